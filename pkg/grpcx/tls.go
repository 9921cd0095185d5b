package grpcx

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

// ServerTLS returns the TLS configuration of a gRPC listener from a PEM certificate
// (chain) and key. The files are checked at each new connection and re-read when they
// change, so a renewed certificate (cert-manager, a rotated Secret) is served without a
// restart.
func ServerTLS(certFile, keyFile string) (*tls.Config, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile}
	if err := r.load(); err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"h2"}, // gRPC clients require ALPN h2
		GetCertificate: r.get,
	}, nil
}

// ListenTLS wraps lis so that it serves TLS with cfg; the gRPC server on it stays
// unaware, which lets one server also serve the process's in-memory listener in clear.
func ListenTLS(lis net.Listener, cfg *tls.Config) net.Listener { return tls.NewListener(lis, cfg) }

// ClientTLS returns the TLS configuration for calls to services whose certificates are
// signed by the CA in caFile (PEM; empty: the system's roots). serverName, when set,
// replaces the host of the address as the name the certificate must hold.
func ClientTLS(caFile, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("GRPC_TLS_CA_FILE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("GRPC_TLS_CA_FILE: %s holds no PEM certificate", caFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

type certReloader struct {
	certFile, keyFile string

	mu       sync.Mutex
	cert     *tls.Certificate
	modified [2]time.Time
}

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m, err := r.modTimes(); err == nil && m != r.modified {
		// On failure the certificate we have is served on: a half-written pair is the
		// usual cause, and the next connection tries again.
		_ = r.loadLocked()
	}
	return r.cert, nil
}

func (r *certReloader) load() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.loadLocked()
}

func (r *certReloader) loadLocked() error {
	m, err := r.modTimes()
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("GRPC_TLS_CERT_FILE / GRPC_TLS_KEY_FILE: %w", err)
	}
	r.cert, r.modified = &cert, m
	return nil
}

func (r *certReloader) modTimes() ([2]time.Time, error) {
	var out [2]time.Time
	for i, f := range []string{r.certFile, r.keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			return out, fmt.Errorf("GRPC_TLS_CERT_FILE / GRPC_TLS_KEY_FILE: %w", err)
		}
		out[i] = st.ModTime()
	}
	return out, nil
}
