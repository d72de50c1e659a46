#!/usr/bin/env node
// check-events.js - validate the event schemas' examples and counter-examples in one process
// (scripts/check-contracts.sh; `ajv compile` checks the schemas themselves first).
//
//   node tools/contracts/check-events.js <schemas/events dir>
//
// For every <dir>/<type>.json: $schema is draft 2020-12, `examples` is a non-empty array and
// every example validates; every <dir>/invalid/<type>-*.json must FAIL validation. Every
// counter-example must name a schema. Same Ajv options as the ajv-cli call in the script.
'use strict';
const fs = require('fs');
const path = require('path');
const Ajv2020 = require('ajv/dist/2020').default;
const addFormats = require('ajv-formats').default;

const dir = process.argv[2];
if (!dir) {
  console.error('usage: check-events.js <schemas/events dir>');
  process.exit(2);
}
const ajv = new Ajv2020({ strict: true, strictRequired: false, allowUnionTypes: true, allErrors: true });
addFormats(ajv);

const problems = [];
let nSchemas = 0, nExamples = 0, nInvalid = 0;
const types = fs.readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)).sort();
const invDir = path.join(dir, 'invalid');
const invalid = fs.existsSync(invDir) ? fs.readdirSync(invDir).filter((f) => f.endsWith('.json')).sort() : [];
const fmt = (errs) => ajv.errorsText(errs, { separator: '; ' });

for (const type of types) {
  const file = path.join(dir, `${type}.json`);
  let schema, validate;
  try {
    schema = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (schema.$schema !== 'https://json-schema.org/draft/2020-12/schema')
      problems.push(`${file}: $schema must be https://json-schema.org/draft/2020-12/schema`);
    validate = ajv.compile(schema);
    nSchemas++;
  } catch (e) {
    problems.push(`${file}: ${e.message}`);
    continue;
  }
  if (!Array.isArray(schema.examples) || schema.examples.length === 0) {
    problems.push(`${file}: needs a non-empty "examples" array`);
  } else {
    schema.examples.forEach((ex, i) => {
      nExamples++;
      if (!validate(ex)) problems.push(`${file}: examples[${i}] is invalid: ${fmt(validate.errors)}`);
    });
  }
  const mine = invalid.filter((f) => f.startsWith(`${type}-`));
  if (mine.length === 0) problems.push(`${file}: no counter-examples (${invDir}/${type}-<what>.json)`);
  for (const f of mine) {
    const p = path.join(invDir, f);
    let data;
    try {
      data = JSON.parse(fs.readFileSync(p, 'utf8'));
    } catch (e) {
      problems.push(`${p}: not JSON: ${e.message}`);
      continue;
    }
    nInvalid++;
    if (validate(data)) problems.push(`${p}: counter-example is ACCEPTED by ${type}.json`);
  }
}
for (const f of invalid) {
  if (!types.some((t) => f.startsWith(`${t}-`)))
    problems.push(`${path.join(invDir, f)}: names no schema (want <type>-<what>.json)`);
}

for (const p of problems) console.log(p);
console.log(`${nSchemas} schemas, ${nExamples} examples valid, ${nInvalid} counter-examples checked`);
process.exit(problems.length ? 1 : 0);
