// Pins the Flux controllers whose CRDs (config/crd/bases/) the e2e control
// plane installs. Deliberately no imports and no tool directives yet: only
// `go mod download` is needed to put the sources in the module cache, so do
// NOT run `go mod tidy` here (it would drop every require).
module fluxtune.local/e2e/tools/flux

go 1.26.0

require (
	github.com/fluxcd/image-automation-controller v1.2.3
	github.com/fluxcd/image-reflector-controller v1.2.3
	github.com/fluxcd/kustomize-controller v1.9.4
	github.com/fluxcd/notification-controller v1.9.3
	github.com/fluxcd/source-controller v1.9.1
)

// Copied from the controllers' own go.mod files (their `./api` replaces are
// not needed: the published api modules are used instead).
replace (
	github.com/opencontainers/go-digest => github.com/opencontainers/go-digest v1.0.1-0.20220411205349-bde1400a84be
	gopkg.in/yaml.v3 => gopkg.in/yaml.v3 v3.0.1
	sigs.k8s.io/kustomize/api => sigs.k8s.io/kustomize/api v0.21.1
	sigs.k8s.io/kustomize/kyaml => sigs.k8s.io/kustomize/kyaml v0.21.1
)
