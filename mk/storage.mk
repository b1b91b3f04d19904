# storage/: the js IPFS importer (CID reference vectors) and a js-ipfs daemon for the
# integration tests, both from npm, pinned in tools/ipfs/package-lock.json.
# --ignore-scripts: nothing in there needs an install script (and none may download).

IPFS_DIR   := tools/ipfs
IPFS_STAMP := $(IPFS_DIR)/node_modules/.stamp

$(IPFS_STAMP): $(IPFS_DIR)/package.json $(IPFS_DIR)/package-lock.json
	cd $(IPFS_DIR) && npm ci --ignore-scripts --no-audit --no-fund
	touch $@

.PHONY: ipfs-test-setup cid-vectors

ipfs-test-setup: $(IPFS_STAMP)

# Regenerate tests/vectors/cid_vectors.json with the pinned reference importer.
cid-vectors: $(IPFS_STAMP)
	node $(IPFS_DIR)/make_vectors.mjs

TEST_SETUP += ipfs-test-setup
SERVICES   += ipfs
