// Types for the parts of httpntlm's NTLM message module we use (the package ships none).
declare module "httpntlm/ntlm.js" {
  export interface NtlmCredentials {
    username: string;
    password: string;
    domain?: string;
    workstation?: string;
  }
  export interface Type2Message {
    signature: Buffer;
    type: number;
    negotiateFlags: number;
    serverChallenge: Buffer;
    targetInfo?: Buffer;
  }
  /** "NTLM <base64>" */
  export function createType1Message(options: NtlmCredentials): string;
  /** Parses "NTLM <base64>"; calls back with an error and returns null when it is not a type 2 message. */
  export function parseType2Message(header: string, callback: (err: Error) => void): Type2Message | null;
  /** "NTLM <base64>" */
  export function createType3Message(type2: Type2Message, options: NtlmCredentials): string;
  export function create_NT_hashed_password(password: string): Buffer;
}
