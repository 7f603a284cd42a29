// Compiles contracts/src with the pinned `solc` npm package and writes contracts/artifacts/<Name>.json.
//
//   node compile.mjs                         write the artefacts
//   node compile.mjs --check                 recompile in memory; exit 1 listing stale artefacts
//   node compile.mjs --artifacts-dir <dir>   read/write artefacts in <dir> instead
//
// The artefacts are committed; a test runs `--check` so that they never drift from the sources.
// Output is deterministic: keys sorted, 2-space indent, trailing newline, no machine paths
// (source unit names are `src/<File>.sol` and `@openzeppelin/...`).

import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join, normalize, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import solc from "solc";

const HERE = dirname(fileURLToPath(import.meta.url));
const NODE_MODULES = join(HERE, "node_modules");
const CONTRACTS = ["ReceivableAnchor", "FinancingRegistry"];
const SETTINGS = {
  evmVersion: "cancun",
  optimizer: { enabled: true, runs: 200 },
};

function usage(code) {
  const text = "usage: node compile.mjs [--check] [--artifacts-dir <dir>]\n";
  (code === 0 ? process.stdout : process.stderr).write(text);
  process.exit(code);
}

function parseArgs(argv) {
  const options = { check: false, artifactsDir: join(HERE, "artifacts") };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (arg === "--check") options.check = true;
    else if (arg === "--artifacts-dir") {
      if (i + 1 >= argv.length) usage(2);
      options.artifactsDir = resolve(argv[(i += 1)]);
    } else if (arg.startsWith("--artifacts-dir=")) {
      options.artifactsDir = resolve(arg.slice("--artifacts-dir=".length));
    } else if (arg === "--help" || arg === "-h") usage(0);
    else usage(2);
  }
  return options;
}

function sha256(text) {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

/** Resolves `@openzeppelin/...` imports from node_modules; nothing else is importable. */
function findImports(unitName) {
  const path = normalize(unitName);
  if (!path.startsWith("@openzeppelin/") || path.includes("..")) {
    return { error: `import not allowed: ${unitName}` };
  }
  const file = join(NODE_MODULES, path);
  if (!existsSync(file)) return { error: `not found in node_modules: ${unitName}` };
  return { contents: readFileSync(file, "utf8") };
}

function compile() {
  const sources = {};
  for (const name of CONTRACTS) {
    sources[`src/${name}.sol`] = { content: readFileSync(join(HERE, "src", `${name}.sol`), "utf8") };
  }
  const input = {
    language: "Solidity",
    sources,
    settings: {
      ...SETTINGS,
      outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "metadata"] } },
    },
  };
  const loaded = new Map();
  const output = JSON.parse(
    solc.compile(JSON.stringify(input), {
      import: (unitName) => {
        const result = findImports(unitName);
        if (result.contents !== undefined) loaded.set(unitName, result.contents);
        return result;
      },
    }),
  );
  const errors = (output.errors ?? []).filter((e) => e.severity === "error");
  for (const message of output.errors ?? []) process.stderr.write(message.formattedMessage ?? message.message);
  if (errors.length > 0) {
    process.stderr.write(`compilation failed with ${errors.length} error(s)\n`);
    process.exit(2);
  }

  const contentOf = (unitName) => sources[unitName]?.content ?? loaded.get(unitName);
  const artifacts = {};
  for (const name of CONTRACTS) {
    const compiled = output.contracts[`src/${name}.sol`][name];
    const metadata = JSON.parse(compiled.metadata);
    const sourceSha256 = {};
    for (const unitName of Object.keys(metadata.sources)) {
      const content = contentOf(unitName);
      if (content === undefined) throw new Error(`no content for source ${unitName}`);
      sourceSha256[unitName] = sha256(content);
    }
    artifacts[name] = {
      contractName: name,
      abi: compiled.abi,
      bytecode: `0x${compiled.evm.bytecode.object}`,
      deployedBytecode: `0x${compiled.evm.deployedBytecode.object}`,
      compiler: { version: solc.version(), settings: SETTINGS },
      sourceSha256,
    };
  }
  return artifacts;
}

/** Sorts object keys recursively (arrays keep their order) so that the JSON text is stable. */
function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((key) => [key, sortKeys(value[key])]),
    );
  }
  return value;
}

function render(artifact) {
  return `${JSON.stringify(sortKeys(artifact), null, 2)}\n`;
}

function differingKeys(expected, actualText) {
  let actual;
  try {
    actual = JSON.parse(actualText);
  } catch {
    return ["(not valid JSON)"];
  }
  const keys = new Set([...Object.keys(expected), ...Object.keys(actual ?? {})]);
  const differing = [...keys].filter(
    (key) => JSON.stringify(sortKeys(expected[key])) !== JSON.stringify(sortKeys(actual?.[key])),
  );
  return differing.length > 0 ? differing.sort() : ["(formatting)"];
}

function check(artifacts, dir) {
  const problems = [];
  for (const [name, artifact] of Object.entries(artifacts)) {
    const file = join(dir, `${name}.json`);
    if (!existsSync(file)) {
      problems.push(`${name}.json: missing`);
      continue;
    }
    const text = readFileSync(file, "utf8");
    if (text !== render(artifact)) {
      problems.push(`${name}.json: differs in ${differingKeys(artifact, text).join(", ")}`);
    }
  }
  const extra = existsSync(dir)
    ? readdirSync(dir).filter((f) => f.endsWith(".json") && !(f.slice(0, -5) in artifacts))
    : [];
  for (const file of extra.sort()) problems.push(`${file}: not produced by any source`);
  if (problems.length > 0) {
    process.stderr.write(`stale artefacts (run \`npm run compile\` in contracts/):\n`);
    for (const problem of problems) process.stderr.write(`  ${problem}\n`);
    process.exit(1);
  }
  process.stdout.write(`artefacts up to date: ${Object.keys(artifacts).join(", ")}\n`);
}

function write(artifacts, dir) {
  mkdirSync(dir, { recursive: true });
  for (const [name, artifact] of Object.entries(artifacts)) {
    writeFileSync(join(dir, `${name}.json`), render(artifact));
    process.stdout.write(`wrote ${name}.json\n`);
  }
}

const options = parseArgs(process.argv.slice(2));
const artifacts = compile();
if (options.check) check(artifacts, options.artifactsDir);
else write(artifacts, options.artifactsDir);
