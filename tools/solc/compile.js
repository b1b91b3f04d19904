#!/usr/bin/env node
// Compile LedgerML's Solidity contracts with the pinned solcjs into committed JSON artifacts.
//
// Usage: node tools/solc/compile.js [--out DIR]
//   default DIR: src/ledgerml/chain/artifacts
//
// Source names are relative ("contracts/X.sol", "@openzeppelin/contracts/..."), so the
// metadata hash appended to the bytecode, and therefore the bytecode, is byte-identical on
// every machine. A pytest test recompiles into a temporary folder and compares.
"use strict";

const fs = require("fs");
const path = require("path");
const crypto = require("crypto");
const solc = require("solc");

const HERE = __dirname;
const REPO = path.resolve(HERE, "..", "..");
const CHAIN_DIR = path.join(REPO, "src", "ledgerml", "chain");
const CONTRACTS_DIR = path.join(CHAIN_DIR, "contracts");
const NODE_MODULES = path.join(HERE, "node_modules");
const EVM_VERSION = "prague";
const OPTIMIZER_RUNS = 200;

function parseArgs(argv) {
  let out = path.join(CHAIN_DIR, "artifacts");
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--out" && i + 1 < argv.length) {
      out = path.resolve(argv[++i]);
    } else {
      throw new Error(`unknown argument: ${argv[i]}`);
    }
  }
  return { out };
}

function sha256(text) {
  return crypto.createHash("sha256").update(text, "utf8").digest("hex");
}

// Imports such as "@openzeppelin/contracts/access/AccessControl.sol" come from node_modules;
// nothing else may be imported (no network, no absolute paths).
function findImports(importPath) {
  if (!importPath.startsWith("@openzeppelin/")) {
    return { error: `import not allowed: ${importPath}` };
  }
  const full = path.join(NODE_MODULES, importPath);
  if (!full.startsWith(NODE_MODULES + path.sep)) {
    return { error: `import escapes node_modules: ${importPath}` };
  }
  try {
    return { contents: fs.readFileSync(full, "utf8") };
  } catch (err) {
    return { error: `cannot read ${importPath}: ${err.message}` };
  }
}

function main() {
  const { out } = parseArgs(process.argv.slice(2));
  const files = fs
    .readdirSync(CONTRACTS_DIR)
    .filter((f) => f.endsWith(".sol"))
    .sort();
  const sources = {};
  for (const f of files) {
    sources[`contracts/${f}`] = { content: fs.readFileSync(path.join(CONTRACTS_DIR, f), "utf8") };
  }
  const input = {
    language: "Solidity",
    sources,
    settings: {
      evmVersion: EVM_VERSION,
      optimizer: { enabled: true, runs: OPTIMIZER_RUNS },
      outputSelection: {
        "*": { "*": ["abi", "metadata", "evm.bytecode.object", "evm.deployedBytecode.object"] },
      },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const errors = (output.errors || []).filter((e) => e.severity === "error");
  for (const e of output.errors || []) {
    process.stderr.write(`${e.formattedMessage || e.message}\n`);
  }
  if (errors.length > 0) {
    process.exit(1);
  }
  // sha256 of every source file a contract was built from (its own and OpenZeppelin's), as
  // listed in the compiler's metadata for that contract, sorted by name.
  const sourceText = (name) => (name in sources ? sources[name].content : findImports(name).contents);
  const sourceHashes = (metadata) => {
    const hashes = {};
    for (const name of Object.keys(JSON.parse(metadata).sources).sort()) {
      hashes[name] = sha256(sourceText(name));
    }
    return hashes;
  };
  fs.mkdirSync(out, { recursive: true });
  const version = solc.version();
  for (const sourceName of Object.keys(sources)) {
    for (const [name, c] of Object.entries(output.contracts[sourceName] || {})) {
      const artifact = {
        contractName: name,
        sourceName,
        compiler: {
          name: "solc",
          version,
          evmVersion: EVM_VERSION,
          optimizer: { enabled: true, runs: OPTIMIZER_RUNS },
        },
        sourcesSha256: sourceHashes(c.metadata),
        abi: c.abi,
        bytecode: "0x" + c.evm.bytecode.object,
        deployedBytecode: "0x" + c.evm.deployedBytecode.object,
      };
      fs.writeFileSync(path.join(out, `${name}.json`), JSON.stringify(artifact, null, 2) + "\n");
      process.stdout.write(`${name}: ${c.evm.deployedBytecode.object.length / 2} bytes deployed\n`);
    }
  }
}

main();
