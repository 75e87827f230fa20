# tests/agent — integration tests of zapc-agent, pods and the zapc CLI (root).
TESTS += $(wildcard tests/agent/*.t)
