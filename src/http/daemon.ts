/** The two daemons, for what the shared HTTP code says about each (500 messages, listen safety, metrics). */
export type DaemonName = "dispatcher" | "autoscaler";
