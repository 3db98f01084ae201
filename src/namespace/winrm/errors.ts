/**
 * A failed WinRM exchange. `unreachable` and `timeout` are worth retrying while the machine boots;
 * `auth` means the credentials were refused; `fault` is a SOAP fault from the service; `protocol`
 * an answer we could not understand. Messages never contain the password or the environment.
 */
export class WinRmError extends Error {
  constructor(
    readonly kind: "unreachable" | "auth" | "fault" | "protocol" | "timeout" | "command",
    message: string,
    readonly httpStatus?: number,
    readonly wsmanCode?: string,
  ) {
    super(message);
    this.name = "WinRmError";
  }
}
