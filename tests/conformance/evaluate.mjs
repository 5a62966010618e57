#!/usr/bin/env node
// Evaluates a C2PA asset rubric (YAML, json-formula traits) over one crJSON document.
//
//   node evaluate.mjs RUBRIC.yml CRJSON.json [--expected-spec-version 2.4]
//
// Prints a JSON array, one entry per expression statement, in rubric order:
//   {id, result: "pass" | "fail" | "warn" | "error", matches, value, error?}
// `value` is what the expression returned; `matches` is that value for a fail/warn of a failIfMatched /
// warnIfMatched trait (what the report's {{matches}} shows), [] when such a trait passes, and the value
// itself for the other traits.
// Exit status: 0 when the rubric was evaluated (whatever the traits said), 2 on bad usage or unreadable input.
//
// Semantics, as in "C2PA Asset Rubrics.md" and the reference evaluator:
// - The first YAML document is the information block. Its `variables` (names start with `$`) become
//   json-formula globals, as does `$expected_spec_version` (default "2.4"). Every mapping of the
//   information block is also visible to expressions as a top-level field of the data (`@.rubric_metadata`).
// - Its `expressions` (names start with `_`) become custom functions. A call passes all its arguments as
//   the global array `$args`, so `$args[0]` is the first argument and `$args[1]` the second: that is how
//   both published rubrics call them (`_manifest_validationResults(_activeManifest())` reads
//   `$args[0].validationResults`; the signals rubric reads `$args[1]` inside a filter). The prose of
//   "C2PA Asset Rubrics.md" (argument 0 as `@`, the rest in `$args`) would make those rubrics fail every
//   asset, so the rubrics' usage wins. `$args` is a global: filters do not shadow it, and a nested call
//   does not clobber the caller's. The body's `@` is the first argument when there is one, else the
//   caller's current `@` (zero-argument helpers such as `_activeManifest()` see the caller's data).
// - Later documents hold statements. Information statements (no `expression`) and data blocks are skipped.
//   An expression statement's value is recorded into the data as `profile.<id>` for later statements.
// - `failIfMatched: true`: a matched (truthy: non-empty array/object/string, true, non-zero) value fails.
//   `warnIfMatched: true`: a matched value warns. Otherwise the statement passes when its value is truthy.
//   An expression that cannot be evaluated (syntax, type or function error) is reported as "error".

import { readFileSync, realpathSync } from 'node:fs';
import process from 'node:process';
import { pathToFileURL } from 'node:url';
import JsonFormula, { dataTypes } from '@adobe/json-formula';
// The engine's own truthiness, so that "matched" means exactly what `&&`, `||` and filters mean.
import { toBoolean } from '@adobe/json-formula/src/utils.js';
import YAML from 'yaml';

const DEFAULT_SPEC_VERSION = '2.4';

// Values json-formula hands back may be wrapped (objects with valueOf); make them plain JSON.
function plain(value) {
  if (value === undefined) return null;
  return JSON.parse(JSON.stringify(value ?? null));
}

function loadRubric(path) {
  const docs = YAML.parseAllDocuments(readFileSync(path, 'utf8'));
  for (const doc of docs) {
    if (doc.errors && doc.errors.length) throw new Error(`${path}: ${doc.errors[0].message}`);
  }
  const [info = {}, ...rest] = docs.map(d => d.toJS({ maxAliasCount: -1 }) ?? null);
  if (info === null || typeof info !== 'object' || Array.isArray(info)) {
    throw new Error(`${path}: the first YAML document must be the information block (a mapping)`);
  }
  if (info.include) throw new Error(`${path}: 'include' is not supported by this evaluator`);
  const statements = [];
  for (const doc of rest) {
    if (doc === null) continue;
    if (!Array.isArray(doc)) throw new Error(`${path}: a statement section must be a list`);
    statements.push(...doc);
  }
  return { info, statements };
}

export function evaluateRubric(rubric, crjson, expectedSpecVersion = DEFAULT_SPEC_VERSION) {
  const { info, statements } = rubric;
  const globals = { ...(info.variables || {}), $expected_spec_version: expectedSpecVersion, $args: [] };
  for (const name of Object.keys(globals)) {
    if (!name.startsWith('$')) throw new Error(`variable '${name}' must start with '$'`);
  }
  const globalNames = Object.keys(globals);
  const customFunctions = {};
  let jf = null; // created once every custom function is defined
  const compiled = new Map();
  const compile = source => {
    if (!compiled.has(source)) compiled.set(source, jf.formula.compile(source, globalNames));
    return compiled.get(source);
  };

  for (const [name, body] of Object.entries(info.expressions || {})) {
    if (!/^_[_a-zA-Z0-9$]*$/.test(name)) throw new Error(`expression '${name}' must start with '_'`);
    if (typeof body !== 'string') throw new Error(`expression '${name}' must be a string`);
    customFunctions[name] = {
      _signature: [{ types: [dataTypes.TYPE_ANY], optional: true, variadic: true }],
      // Runs with `this` = the json-formula runtime. A nested search replaces runtime.interpreter,
      // which the caller still needs (for exprefs), so it is restored afterwards.
      _func(args, data) {
        const runtime = this;
        const saved = runtime.interpreter;
        try {
          const self = args.length > 0 ? args[0] : data;
          return jf.formula.search(compile(body), self, { ...globals, $args: args }, 'en-US');
        } finally {
          runtime.interpreter = saved;
        }
      },
    };
  }
  jf = new JsonFormula(customFunctions);

  // The information block's mappings are visible to expressions next to the crJSON; results go to `profile`.
  const data = { ...info, ...crjson, profile: { ...(crjson.profile || {}) } };
  delete data.variables;
  delete data.expressions;

  const results = [];
  for (const statement of statements) {
    if (!statement || typeof statement !== 'object' || statement.block !== undefined) continue;
    if (typeof statement.expression !== 'string') continue; // information statement
    const { id } = statement;
    const failIfMatched = statement.failIfMatched === true;
    const warnIfMatched = statement.warnIfMatched === true;
    let value;
    try {
      value = plain(jf.formula.search(compile(statement.expression), data, globals, 'en-US'));
    } catch (err) {
      data.profile[id] = null;
      results.push({ id, result: 'error', matches: null, value: null, error: String(err.message || err) });
      continue;
    }
    data.profile[id] = value;
    const matched = toBoolean(value);
    let result;
    if (failIfMatched) result = matched ? 'fail' : 'pass';
    else if (warnIfMatched) result = matched ? 'warn' : 'pass';
    else result = matched ? 'pass' : 'fail';
    const matches = (failIfMatched || warnIfMatched) ? (matched ? value : []) : value;
    results.push({ id, result, matches, value });
  }
  return results;
}

function main(argv) {
  const positional = [];
  let expected = DEFAULT_SPEC_VERSION;
  for (let i = 0; i < argv.length; i += 1) {
    if (argv[i] === '--expected-spec-version') {
      expected = argv[i + 1];
      i += 1;
    } else {
      positional.push(argv[i]);
    }
  }
  if (positional.length !== 2 || !expected) {
    process.stderr.write('usage: node evaluate.mjs RUBRIC.yml CRJSON.json [--expected-spec-version 2.4]\n');
    return 2;
  }
  let rubric;
  let crjson;
  try {
    rubric = loadRubric(positional[0]);
    crjson = JSON.parse(readFileSync(positional[1], 'utf8'));
  } catch (err) {
    process.stderr.write(`evaluate.mjs: ${err.message || err}\n`);
    return 2;
  }
  if (crjson === null || typeof crjson !== 'object' || Array.isArray(crjson)) {
    process.stderr.write('evaluate.mjs: the crJSON document must be a JSON object\n');
    return 2;
  }
  let results;
  try {
    results = evaluateRubric(rubric, crjson, expected);
  } catch (err) {
    process.stderr.write(`evaluate.mjs: ${err.message || err}\n`);
    return 2;
  }
  process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  process.exitCode = main(process.argv.slice(2));
}
