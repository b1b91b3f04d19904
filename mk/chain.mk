# chain/: Solidity toolchain (solcjs + OpenZeppelin) and anvil, both from npm, pinned in
# tools/solc/package-lock.json. Only `make contracts` and the tests need them: `make demo`
# uses the committed artifacts in src/ledgerml/chain/artifacts and never runs node.

SOLC_DIR   := tools/solc
SOLC_STAMP := $(SOLC_DIR)/node_modules/.ledgerml-npm-ci

# --ignore-scripts: the anvil binary ships in its platform package's tarball; the wrapper's
# postinstall would only try to fetch it again.
$(SOLC_STAMP): $(SOLC_DIR)/package.json $(SOLC_DIR)/package-lock.json
	cd $(SOLC_DIR) && npm ci --ignore-scripts --no-audit --no-fund
	touch $@

.PHONY: contracts chain-test-setup

# Recompile the contracts into the committed artifacts (a test checks they match).
contracts: $(SOLC_STAMP)
	node $(SOLC_DIR)/compile.js

# Needed by tests/chain (recompile-and-compare, anvil backend).
chain-test-setup: $(SOLC_STAMP)

TEST_SETUP += chain-test-setup
SERVICES   += anvil
