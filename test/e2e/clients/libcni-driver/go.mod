// The libcni the e2e suite drives; CNI_VERSION in scripts/peers.versions names the same
// version (scripts/peers.sh libcni checks that they agree).
module podnet.test/e2e/clients/libcni-driver

go 1.21

require github.com/containernetworking/cni v1.3.1

require (
	go.opentelemetry.io/otel v1.29.0 // indirect
	go.opentelemetry.io/otel/trace v1.29.0 // indirect
)
