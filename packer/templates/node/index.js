// A small wrapkit app run by this machine's Node.js, bundled with it: `wrapkit pack {{name}}`
// packs node, this script, its data and node_modules (after `npm install`) into
// ./{{name}}.run, which runs where no Node.js is installed. Files next to this script are real
// files at run time, found through __dirname.
const fs = require("fs");
const path = require("path");

const who = process.argv[2] || "world";
const greeting = fs.readFileSync(path.join(__dirname, "data", "greeting.txt"), "utf8").trim();
console.log(`${greeting}, ${who}!`);
console.log(`({{name}}, Node.js ${process.version})`);
