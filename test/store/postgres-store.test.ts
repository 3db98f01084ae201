import { runStoreContract } from "./store-contract.js";
import { postgresHarness } from "./postgres-harness.js";

runStoreContract("PostgresStore on a fresh schema", postgresHarness);
