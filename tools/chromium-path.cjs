#!/usr/bin/env node
// Prints the path of the headless Chromium that npm's @sparticuz/chromium ships inside the package,
// unpacking it on first use into $TMPDIR (the bootstrap points that at .cache/chromium, so once).
const chromium = require('@sparticuz/chromium');

chromium.executablePath().then(
  (path) => console.log(path),
  (error) => { console.error(`cannot unpack Chromium: ${error.message}`); process.exit(1); },
);
