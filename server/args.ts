/**
 * The one command-line parser of the hub, the CLI commands and the bench: node:util parseArgs
 * driven by a list of specs, with every error worded around the flag as the user typed it.
 */
import { parseArgs } from 'node:util';

/** An option that is missing, malformed or contradicts another; the CLI prints its message and exits 2. */
export class InvalidOptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidOptionError';
  }
}

/** int: a non-negative integer; list: comma-separated; boolean: a switch that takes no value. */
export type ArgKind = 'int' | 'string' | 'list' | 'boolean';

export interface ArgSpec {
  /** As typed, with the dashes: `--max-body-bytes`. */
  flag: string;
  kind: ArgKind;
  /** One-letter alias without the dash, e.g. `h` for `-h`. */
  short?: string;
}

export interface ParsedArgs {
  /** Raw values by flag (`--port`): strings for valued flags, true for switches that were given. */
  values: Map<string, string | true>;
  positionals: string[];
}

/**
 * Parses argv against `specs`, `--flag value` and `--flag=value` alike, and rejects unknown flags,
 * flags without a value, values on switches and (unless allowed) positional arguments.
 */
export function parseFlags(argv: readonly string[], specs: readonly ArgSpec[], opts: { positionals?: boolean } = {}): ParsedArgs {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
  const byName = new Map<string, ArgSpec>();
  for (const s of specs) {
    const name = s.flag.replace(/^--/, '');
    options[name] = { type: s.kind === 'boolean' ? 'boolean' : 'string', ...(s.short ? { short: s.short } : {}) };
    byName.set(name, s);
  }
  // Not strict: parseArgs' strict errors span several lines and their wording changes between
  // Node versions, so every flag comes back as a token and the checks below word the error.
  const { tokens } = parseArgs({ args: [...argv], options, strict: false, allowPositionals: true, tokens: true });
  const values = new Map<string, string | true>();
  const positionals: string[] = [];
  for (const t of tokens) {
    if (t.kind === 'positional') {
      if (!opts.positionals) throw new InvalidOptionError(`unexpected argument ${JSON.stringify(t.value)}`);
      positionals.push(t.value);
      continue;
    }
    if (t.kind !== 'option') continue;
    const s = byName.get(t.name);
    if (!s) throw new InvalidOptionError(`unknown option ${t.rawName}`);
    if (s.kind === 'boolean') {
      if (t.value !== undefined) throw new InvalidOptionError(`${t.rawName} takes no value, got ${JSON.stringify(t.value)}`);
      values.set(s.flag, true);
      continue;
    }
    // parseArgs takes the next argument as the value even if it is another flag: `--port --host x`
    // means a forgotten value, not a port named "--host". `--key=-x` still passes a dash-led value.
    if (t.value === undefined || (!t.inlineValue && /^--?[A-Za-z]/.test(t.value))) throw new InvalidOptionError(`${t.rawName} needs a value`);
    values.set(s.flag, t.value);
  }
  return { values, positionals };
}

/**
 * Whether `--help` or `-h` stands in an option position of `argv`: not as the value of a flag
 * that takes one (`--hub-id -h` names a hub), and not after `--`.
 */
export function wantsHelp(argv: readonly string[], specs: readonly ArgSpec[]): boolean {
  const valued = new Set(specs.filter((s) => s.kind !== 'boolean').map((s) => s.flag));
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return false;
    if (a === '--help' || a === '-h') return true;
    if (valued.has(a)) i++;
  }
  return false;
}

/**
 * A non-negative integer (underscores allowed as digit separators: 1_048_576), at least `min`.
 * `name` is where the value came from, for the message: a flag, an environment variable.
 */
export function parseCount(name: string, raw: string, min = 0): number {
  const n = Number(raw.replace(/_/g, ''));
  if (!/^\d[\d_]*$/.test(raw.trim()) || !Number.isSafeInteger(n)) {
    throw new InvalidOptionError(`${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
  }
  if (n < min) throw new InvalidOptionError(`${name} must be at least ${min}, got ${n}`);
  return n;
}

/** A comma-separated list, blanks dropped. */
export function parseList(raw: string): string[] {
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** Runs `fn`; an InvalidOptionError becomes one line on stderr and exit code 2, without a stack trace. */
export function exitOnInvalidOption<T>(program: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (!(err instanceof InvalidOptionError)) throw err;
    console.error(`${program}: ${err.message}`);
    process.exit(2);
  }
}
