import { z } from "zod";

/** A field a daemon of another version may send as null or leave out: read as undefined. */
export const nullish = <T extends z.ZodType>(t: T) => t.nullish().transform((v) => v ?? undefined);

/** A list a daemon may send as null or leave out: read as empty. */
export const list = <T extends z.ZodType>(t: T) =>
  z
    .array(t)
    .nullish()
    .transform((v) => v ?? []);
