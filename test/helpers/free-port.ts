import { createServer } from "node:net";
import type { AddressInfo } from "node:net";

/** A port nobody listens on right now (the kernel's pick), for configs that must name their own address. */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
