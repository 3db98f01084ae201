import { randomUUID } from "node:crypto";
import { XMLParser } from "fast-xml-parser";
import { errorMessage } from "../../shared/error-message.js";

/**
 * WS-Management SOAP messages of the Windows Remote Shell protocol (MS-WSMV): create a shell, run a
 * command, receive its output, signal it, delete the shell. Pure builders and parsers.
 */

export const NS = {
  soap: "http://www.w3.org/2003/05/soap-envelope",
  addressing: "http://schemas.xmlsoap.org/ws/2004/08/addressing",
  wsman: "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
  msWsman: "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd",
  shell: "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
} as const;

export const RESOURCE_CMD = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd";
export const ACTION = {
  create: "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create",
  delete: "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete",
  command: "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command",
  receive: "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive",
  signal: "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Signal",
} as const;
export const SIGNAL_TERMINATE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate";
export const COMMAND_STATE_DONE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done";
/** WSManFault code of a Receive that found no output within the operation timeout. */
export const FAULT_OPERATION_TIMEOUT = "2150858793";

// XML 1.0 cannot carry most control characters, even escaped.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const XML_INVALID = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/;

export function xmlEscape(text: string): string {
  if (XML_INVALID.test(text)) throw new Error("the value contains control characters that XML (and so WinRM) cannot carry");
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&apos;");
}

export interface EnvelopeOptions {
  to: string;
  action: string;
  shellId?: string;
  options?: Record<string, string>;
  operationTimeoutSec?: number;
  messageId?: string;
  body: string;
}

export function envelope(o: EnvelopeOptions): string {
  const selector = o.shellId ? `<w:SelectorSet><w:Selector Name="ShellId">${xmlEscape(o.shellId)}</w:Selector></w:SelectorSet>` : "";
  const options = o.options
    ? `<w:OptionSet>${Object.entries(o.options)
        .map(([k, v]) => `<w:Option Name="${xmlEscape(k)}">${xmlEscape(v)}</w:Option>`)
        .join("")}</w:OptionSet>`
    : "";
  return (
    `<?xml version="1.0" encoding="utf-8"?>` +
    `<s:Envelope xmlns:s="${NS.soap}" xmlns:a="${NS.addressing}" xmlns:w="${NS.wsman}" xmlns:p="${NS.msWsman}" xmlns:rsp="${NS.shell}">` +
    `<s:Header>` +
    `<a:To>${xmlEscape(o.to)}</a:To>` +
    `<a:ReplyTo><a:Address s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>` +
    `<w:MaxEnvelopeSize s:mustUnderstand="true">512000</w:MaxEnvelopeSize>` +
    `<a:MessageID>uuid:${o.messageId ?? randomUUID().toUpperCase()}</a:MessageID>` +
    `<w:Locale xml:lang="en-US" s:mustUnderstand="false"/>` +
    `<p:DataLocale xml:lang="en-US" s:mustUnderstand="false"/>` +
    `<w:OperationTimeout>PT${o.operationTimeoutSec ?? 20}S</w:OperationTimeout>` +
    `<w:ResourceURI s:mustUnderstand="true">${RESOURCE_CMD}</w:ResourceURI>` +
    `<a:Action s:mustUnderstand="true">${o.action}</a:Action>` +
    selector +
    options +
    `</s:Header>` +
    `<s:Body>${o.body}</s:Body>` +
    `</s:Envelope>`
  );
}

export function createShellBody(env: Record<string, string>): string {
  const vars = Object.entries(env)
    .map(([k, v]) => `<rsp:Variable Name="${xmlEscape(k)}">${xmlEscape(v)}</rsp:Variable>`)
    .join("");
  return (
    `<rsp:Shell>` +
    (vars ? `<rsp:Environment>${vars}</rsp:Environment>` : "") +
    `<rsp:InputStreams>stdin</rsp:InputStreams>` +
    `<rsp:OutputStreams>stdout stderr</rsp:OutputStreams>` +
    `</rsp:Shell>`
  );
}

export function commandBody(command: string, args: readonly string[]): string {
  return (
    `<rsp:CommandLine>` +
    `<rsp:Command>${xmlEscape(command)}</rsp:Command>` +
    args.map((a) => `<rsp:Arguments>${xmlEscape(a)}</rsp:Arguments>`).join("") +
    `</rsp:CommandLine>`
  );
}

export function receiveBody(commandId: string): string {
  return `<rsp:Receive><rsp:DesiredStream CommandId="${xmlEscape(commandId)}">stdout stderr</rsp:DesiredStream></rsp:Receive>`;
}

export function signalBody(commandId: string, code = SIGNAL_TERMINATE): string {
  return `<rsp:Signal CommandId="${xmlEscape(commandId)}"><rsp:Code>${code}</rsp:Code></rsp:Signal>`;
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: "@_",
  removeNSPrefix: true,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  isArray: (name) => ["Stream", "Selector", "Variable", "Arguments", "Option"].includes(name),
});

type XmlNode = Record<string, unknown>;

function child(node: unknown, ...path: string[]): unknown {
  let cur: unknown = node;
  for (const p of path) {
    if (!cur || typeof cur !== "object") return undefined;
    cur = (cur as XmlNode)[p];
  }
  return cur;
}

function text(node: unknown): string {
  if (node === undefined || node === null) return "";
  if (typeof node === "string" || typeof node === "number") return String(node);
  if (typeof node === "object") {
    const t = (node as XmlNode)["#text"];
    return t === undefined ? "" : String(t);
  }
  return "";
}

export interface SoapFault {
  code: string;
  subcode: string;
  reason: string;
  wsmanCode?: string;
  message: string;
}

export interface ParsedEnvelope {
  action: string;
  header: unknown;
  body: unknown;
  fault?: SoapFault;
}

export function parseEnvelope(xml: string): ParsedEnvelope {
  let doc: unknown;
  try {
    doc = parser.parse(xml);
  } catch (err) {
    throw new Error(`not a SOAP envelope: ${errorMessage(err)}`);
  }
  const env = child(doc, "Envelope");
  if (!env) throw new Error("not a SOAP envelope");
  const header = child(env, "Header");
  const body = child(env, "Body");
  const out: ParsedEnvelope = { action: text(child(header, "Action")), header, body };
  const fault = child(body, "Fault");
  if (fault) {
    const wsmanFault = child(fault, "Detail", "WSManFault");
    out.fault = {
      code: text(child(fault, "Code", "Value")),
      subcode: text(child(fault, "Code", "Subcode", "Value")),
      reason: text(child(fault, "Reason", "Text")),
      wsmanCode: wsmanFault ? String((wsmanFault as XmlNode)["@_Code"] ?? "") : undefined,
      message: text(child(wsmanFault, "Message")) || text(child(fault, "Reason", "Text")),
    };
  }
  return out;
}

/** The ShellId of a Create response (as a selector, or in the returned Shell). */
export function shellIdOf(p: ParsedEnvelope): string | undefined {
  const selectors = child(p.body, "ResourceCreated", "ReferenceParameters", "SelectorSet", "Selector");
  if (Array.isArray(selectors)) {
    const s = selectors.find((x) => (x as XmlNode)["@_Name"] === "ShellId");
    if (s) return text(s);
  }
  const id = text(child(p.body, "Shell", "ShellId"));
  return id || undefined;
}

export function commandIdOf(p: ParsedEnvelope): string | undefined {
  return text(child(p.body, "CommandResponse", "CommandId")) || undefined;
}

export interface ReceiveResult {
  stdout: Buffer;
  stderr: Buffer;
  done: boolean;
  exitCode?: number;
}

export function receiveResultOf(p: ParsedEnvelope): ReceiveResult {
  const resp = child(p.body, "ReceiveResponse");
  const streams = (child(resp, "Stream") as unknown[] | undefined) ?? [];
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  for (const s of streams) {
    const name = (s as XmlNode)["@_Name"];
    const data = Buffer.from(text(s), "base64");
    if (name === "stdout") out.push(data);
    else if (name === "stderr") err.push(data);
  }
  const state = child(resp, "CommandState");
  const done = String((state as XmlNode | undefined)?.["@_State"] ?? "") === COMMAND_STATE_DONE;
  const exitText = text(child(state, "ExitCode"));
  const result: ReceiveResult = { stdout: Buffer.concat(out), stderr: Buffer.concat(err), done };
  if (exitText !== "") result.exitCode = Number(exitText);
  return result;
}
