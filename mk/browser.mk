# Browser tests (audit report, auditor pages): the `playwright` pip package drives Debian's
# chromium through executable_path; `playwright install` is neither needed nor possible offline.
# Only `make test` needs it; `make demo` never starts a browser.

CHROMIUM ?= /usr/bin/chromium

.PHONY: browser-test-setup

browser-test-setup:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  echo "installing Debian's chromium for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; \
	fi

TEST_SETUP += browser-test-setup
