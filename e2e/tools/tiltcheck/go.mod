// fluxtune's Tiltfile checker (main.go): evaluates the Tiltfile in go.starlark.net, the
// interpreter Tilt embeds, with Tilt's builtins as recorders that check what Tilt checks.
module fluxtune.local/e2e/tools/tiltcheck

go 1.26.0

require (
	github.com/distribution/reference v0.6.0
	github.com/moby/patternmatcher v0.6.1
	go.starlark.net v0.0.0-20260908191801-89a6a09411d5
	go.yaml.in/yaml/v3 v3.0.6
)

require (
	github.com/opencontainers/go-digest v1.0.0 // indirect
	golang.org/x/sys v0.42.0 // indirect
)
