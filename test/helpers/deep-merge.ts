/** A parsed YAML or JSON mapping. */
export type Tree = Record<string, unknown>;

export const isTree = (v: unknown): v is Tree => typeof v === "object" && v !== null && !Array.isArray(v);

/** `b` over `a`, mapping by mapping (as configs are layered); lists and other values of `b` replace `a`'s. */
export function deepMerge(a: Tree, b: Tree): Tree {
  const out: Tree = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = isTree(out[k]) && isTree(v) ? deepMerge(out[k] as Tree, v) : v;
  return out;
}
