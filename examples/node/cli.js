#!/usr/bin/env node
// durations: converts between "1h 30m"-style durations and milliseconds, with `ms` from npm.
//   durations 2h 90s 1500    ->  one line per argument
//   durations --sum 2h 90s   ->  the total
// Read by `wrapkit pack examples/node --node` and run unpacked by the tests for comparison.
'use strict';
const ms = require('ms');
const path = require('path');
const fs = require('fs');

const args = process.argv.slice(2);
const sum = args[0] === '--sum';
const items = sum ? args.slice(1) : args;
if (items.length === 0) {
  // The bundled data file: examples when there is nothing to convert.
  const examples = fs.readFileSync(path.join(__dirname, 'examples.txt'), 'utf8').trim().split('\n');
  items.push(...examples);
}
let total = 0;
for (const item of items) {
  const value = /^\d+$/.test(item) ? Number(item) : ms(item);
  if (value === undefined) {
    console.error(`durations: not a duration: ${item}`);
    process.exit(2);
  }
  total += value;
  if (!sum) console.log(`${item}\t${value} ms\t${ms(value, { long: true })}`);
}
if (sum) console.log(`${total} ms\t${ms(total, { long: true })}`);
