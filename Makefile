# The two commands of README.md, plus a few conveniences. Every target is a thin
# wrapper around a script in scripts/, so nothing here hides logic.
.PHONY: demo test down status build lint bench

demo:      ## bring the whole platform up on this machine with demo data
	bash scripts/demo up

test:      ## build (ASan/UBSan, -Werror), lint, contracts, then every test on a private stack
	bash scripts/test

down:      ## stop the demo platform (services + stack) started by `make demo`
	bash scripts/demo down

status:
	bash scripts/demo status

build:
	cmake -S . -B build/dev -G Ninja && cmake --build build/dev

bench:
	bash bench/run.sh
