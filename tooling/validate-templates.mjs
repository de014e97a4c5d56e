#!/usr/bin/env node
// Validates element templates with the validator Camunda Modeler itself uses.
// Usage: node validate-templates.mjs [FILE...]   Prints a JSON report; exit code 1 if any file is invalid.
// Without arguments it checks ../element-templates/*.json and ../element-templates/versioned/*.json.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { validateZeebe } from '@bpmn-io/element-templates-validator';

function defaultFiles() {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', 'element-templates');
  return [ root, join(root, 'versioned') ]
    .filter((directory) => existsSync(directory))
    .flatMap((directory) => readdirSync(directory)
      .filter((name) => name.endsWith('.json'))
      .sort()
      .map((name) => join(directory, name)));
}

const files = process.argv.length > 2 ? process.argv.slice(2) : defaultFiles();
if (!files.length) {
  console.error('no element templates found');
  process.exit(2);
}

const report = [];
let failed = false;

for (const file of files) {
  const text = readFileSync(file, 'utf8');
  const templates = [].concat(JSON.parse(text));
  for (const template of templates) {
    const { valid, errors } = validateZeebe(template);
    const problems = (errors || []).map((error) => ({
      message: error.message,
      path: error.dataPath || error.instancePath || '',
      params: error.params
    }));
    // Modeler checks `constraints.pattern` with JavaScript regular expressions: they must compile.
    for (const property of template.properties || []) {
      const pattern = property.constraints && property.constraints.pattern;
      const source = pattern && (typeof pattern === 'string' ? pattern : pattern.value);
      if (source === undefined) continue;
      try {
        new RegExp(source);
      } catch (error) {
        problems.push({ message: `pattern does not compile in JavaScript: ${error.message}`, path: property.id });
      }
    }
    failed = failed || !valid || problems.length > 0;
    report.push({ file, id: template.id, version: template.version, valid: valid && problems.length === 0, errors: problems });
  }
}

console.log(JSON.stringify(report, null, 2));
process.exit(failed ? 1 : 0);
