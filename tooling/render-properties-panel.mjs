#!/usr/bin/env node
// Renders BPMN diagrams with the element templates in Camunda Modeler's real properties panel
// (properties-panel.html, camunda-bpmn-js) in headless Chromium, selects every service task and reports
// what a modeller would see: whether the template is applied, import or template problems, validation
// messages, fields whose content is wider than the field, and the tallest field.
//
// Usage: node render-properties-panel.mjs --base URL --template FILE... [--chromium PATH]
//                                         [--screenshot PNG --of DIAGRAM] DIAGRAM...
//   URL serves this folder (tooling/); the test starts a loopback HTTP server for it. Prints a JSON report
//   on stdout; the test decides what fails.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

const PANEL_WIDTH = 280;
const CANVAS_WIDTH = 520;
const VIEWPORT = { width: CANVAS_WIDTH + PANEL_WIDTH, height: 900 };
// The examples' execution platform version: Modeler hands it to the element templates as the engine.
const ENGINES = { camunda: '8.6.0' };
const STEP_TIMEOUT_MS = 15000;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    base: { type: 'string' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
    template: { type: 'string', multiple: true, default: [] },
    screenshot: { type: 'string' },
    of: { type: 'string' }
  }
});
if (!values.base || !positionals.length || !values.template.length) {
  console.error('usage: render-properties-panel.mjs --base URL --template FILE... DIAGRAM...');
  process.exit(2);
}
const templates = values.template.flatMap((file) => [].concat(JSON.parse(readFileSync(file, 'utf8'))));

// Everything the panel shows for the selected element, read from its DOM.
function readPanel() {
  const panel = document.querySelector('#properties');
  const text = (selector) => (panel.querySelector(selector)?.textContent || '').trim();
  const entryOf = (node) => {
    const entry = node.closest('[data-entry-id]');
    const group = node.closest('[data-group-id]');
    return {
      entry: entry?.getAttribute('data-entry-id') || '',
      label: (entry?.querySelector('.bio-properties-panel-label')?.textContent || '').trim(),
      group: (group?.querySelector('.bio-properties-panel-group-header-title')?.textContent || '').trim()
    };
  };
  const errors = [ ...panel.querySelectorAll('.bio-properties-panel-error') ]
    .map((node) => ({ ...entryOf(node), message: node.textContent.trim() }));
  const fields = [ ...panel.querySelectorAll('input[type="text"], input:not([type]), textarea, .cm-content') ]
    .filter((node) => node.offsetParent !== null);
  const overflows = fields
    .filter((node) => {
      const box = node.classList.contains('cm-content') ? node.closest('.cm-scroller') || node : node;
      return box.scrollWidth > box.clientWidth + 1 || node.getBoundingClientRect().right > panel.getBoundingClientRect().right;
    })
    .map((node) => ({ ...entryOf(node), width: node.scrollWidth, visible: node.clientWidth }));
  const tallest = fields
    .map((node) => ({ ...entryOf(node), height: Math.round(node.getBoundingClientRect().height) }))
    .sort((a, b) => b.height - a.height)[0] || null;
  return {
    header: { type: text('.bio-properties-panel-header-type'), label: text('.bio-properties-panel-header-label') },
    groups: [ ...panel.querySelectorAll('.bio-properties-panel-group-header-title') ].map((node) => node.textContent.trim()),
    errors,
    overflows,
    tallest
  };
}

async function showTask(page, task) {
  // The panel subscribes to selection changes only after its first paint: select until it shows the task.
  await page.waitForFunction(({ id, name }) => {
    const label = document.querySelector('#properties .bio-properties-panel-header-label');
    if ((label?.textContent || '').trim() === name) return true;
    window.selectElement(id);
    return false;
  }, task, { timeout: STEP_TIMEOUT_MS, polling: 100 });
  // Open every group, so each field renders where the modeller would see it.
  // Groups without entries stay closed; a click on an open group would close it, so click each closed one once.
  await page.evaluate(() => {
    document.querySelectorAll('#properties .bio-properties-panel-group-header:not(.open)').forEach((header) => header.click());
  });
  // Validation runs as the fields render: wait for two animation frames after the groups opened.
  await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))));
  return page.evaluate(readPanel);
}

// The whole panel, not just what fits the window: the window grows to the panel's content first.
async function screenshot(page, file) {
  const height = await page.evaluate(() => {
    const panel = document.querySelector('#properties');
    const header = panel.querySelector('.bio-properties-panel-header');
    const scroll = panel.querySelector('.bio-properties-panel-scroll-container');
    return Math.ceil(header.getBoundingClientRect().height + scroll.scrollHeight);
  });
  await page.setViewportSize({ width: VIEWPORT.width, height: Math.max(VIEWPORT.height, height) });
  await page.locator('#properties').screenshot({ path: file, animations: 'disabled', caret: 'hide' });
  await page.setViewportSize(VIEWPORT);
}

const browser = await chromium.launch({
  executablePath: values.chromium,
  args: [ '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage' ]
});
const report = [];
try {
  const page = await browser.newPage({ viewport: VIEWPORT, deviceScaleFactor: 1 });
  const pageErrors = [];
  page.on('pageerror', (error) => pageErrors.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') pageErrors.push(`console error: ${message.text()}`);
  });
  await page.goto(new URL('properties-panel.html', values.base.replace(/\/?$/, '/')).href);
  await page.waitForFunction(() => typeof window.openDiagram === 'function', null, { timeout: STEP_TIMEOUT_MS });
  for (const diagram of positionals) {
    const opened = await page.evaluate(
      ([ xml, templates, engines ]) => window.openDiagram(xml, templates, engines),
      [ readFileSync(diagram, 'utf8'), templates, ENGINES ]
    );
    const tasks = [];
    for (const task of opened.tasks) {
      tasks.push({ ...task, panel: await showTask(page, task) });
      if (values.screenshot && values.of === diagram) {
        await screenshot(page, values.screenshot);
      }
    }
    report.push({ diagram, problems: [ ...opened.problems, ...pageErrors.splice(0) ], tasks });
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(report, null, 2));
