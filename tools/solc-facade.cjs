#!/usr/bin/env node
// A native-`solc` command line over solc-js (the npm `solc` package).
//
// py-solc-x (and so ape-solidity) drives a native compiler binary. None may be
// downloaded on our machines, so this script answers the two modes py-solc-x
// uses, `--version` and `--standard-json`, with native solc's output format,
// file-loading rules and exit codes. Compile errors are reported inside the
// standard-JSON output exactly as native solc reports them; only misuse of the
// command line itself exits non-zero.
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const USAGE = `solc (solc-js facade)
Usage: solc --version
       solc --standard-json [--base-path DIR] [--include-path DIR]... [--allow-paths DIR[,DIR]...] [INPUT_FILE]
`;

function fail(message) {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

function parseArgs(argv) {
  const opts = { version: false, standardJson: false, basePath: null, includePaths: [], allowPaths: [], inputFile: null };
  const takesValue = new Set(['--base-path', '--include-path', '--allow-paths']);
  for (let i = 0; i < argv.length; i += 1) {
    let arg = argv[i];
    let value = null;
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    if (takesValue.has(arg) && value === null) {
      i += 1;
      if (i >= argv.length) fail(`Option ${arg} requires a value.`);
      value = argv[i];
    }
    switch (arg) {
      case '--version': opts.version = true; break;
      case '--standard-json': opts.standardJson = true; break;
      case '--base-path': opts.basePath = value; break;
      case '--include-path': opts.includePaths.push(value); break;
      case '--allow-paths': opts.allowPaths.push(...value.split(',').filter(Boolean)); break;
      case '--help': process.stdout.write(USAGE); process.exit(0); break;
      default:
        if (arg.startsWith('-')) fail(`Unrecognized option: ${arg}\n\n${USAGE}`);
        if (opts.inputFile !== null) fail('Too many input files for --standard-json.');
        opts.inputFile = arg;
    }
  }
  return opts;
}

function loadCompiler() {
  try {
    return require('solc');
  } catch (err) {
    fail(`solc-js is not installed next to this facade (${err.message}). Run the project's bootstrap.`);
  }
  return null;
}

// Native solc resolves a source unit name against the base path, then each
// include path, and refuses anything outside the allowed directories.
function makeImportCallback(opts) {
  const cwd = process.cwd();
  const basePath = path.resolve(cwd, opts.basePath || '.');
  const includePaths = opts.includePaths.map((p) => path.resolve(cwd, p));
  const allowed = [basePath, ...includePaths, ...opts.allowPaths.map((p) => path.resolve(cwd, p))]
    .map((p) => { try { return fs.realpathSync(p); } catch { return p; } });

  const isAllowed = (file) => {
    let real;
    try { real = fs.realpathSync(file); } catch { real = file; }
    return allowed.some((dir) => real === dir || real.startsWith(dir.endsWith(path.sep) ? dir : dir + path.sep));
  };

  return (unitName) => {
    const candidates = path.isAbsolute(unitName)
      ? [unitName]
      : [basePath, ...includePaths].map((root) => path.join(root, unitName));
    const searched = [];
    for (const candidate of candidates) {
      searched.push(`"${candidate}"`);
      if (!fs.existsSync(candidate) || !fs.statSync(candidate).isFile()) continue;
      if (!isAllowed(candidate)) {
        return { error: `File outside of allowed directories. The following are allowed: ${allowed.map((d) => `"${d}"`).join(', ')}.` };
      }
      return { contents: fs.readFileSync(candidate, 'utf8') };
    }
    return { error: `File not found. Searched the following locations: ${searched.join(', ')}.` };
  };
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const solc = loadCompiler();
  if (opts.version) {
    process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
    return;
  }
  if (!opts.standardJson) fail(`Only --version and --standard-json are supported by this facade.\n\n${USAGE}`);

  let input;
  try {
    input = opts.inputFile === null ? fs.readFileSync(0, 'utf8') : fs.readFileSync(opts.inputFile, 'utf8');
  } catch (err) {
    fail(`Cannot read standard JSON input: ${err.message}`);
  }
  const output = solc.compile(input, { import: makeImportCallback(opts) });
  process.stdout.write(`${output}\n`);
}

main();
