package grpcx_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/nexusrag/nexusrag/pkg/grpcx"
	"github.com/nexusrag/nexusrag/pkg/logging"
)

// testCA issues certificates for localhost.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue writes a certificate for dnsName and its key to dir, returning their paths.
func (ca *testCA) issue(t *testing.T, dir, dnsName string, serial int64) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: dnsName}, DNSNames: []string{dnsName},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	return certFile, keyFile
}

// TestTLSListener serves gRPC over TLS: a client trusting the CA gets through, a
// plaintext client does not, and a renewed certificate is served without a restart.
func TestTLSListener(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	certFile, keyFile := ca.issue(t, dir, "retrieval.nexusrag.svc", 2)
	serverTLS, err := grpcx.ServerTLS(certFile, keyFile)
	require.NoError(t, err)
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpcx.NewServer(grpcx.ServerOptions{Log: logging.Discard()})
	go func() { _ = srv.Serve(grpcx.ListenTLS(tcp, serverTLS)) }()
	defer srv.Close()
	caFile := filepath.Join(dir, "ca.crt")
	require.NoError(t, os.WriteFile(caFile, ca.pem, 0o600))

	check := func(o grpcx.ClientOptions) (*healthpb.HealthCheckResponse, error) {
		conn, err := grpcx.Dial(tcp.Addr().String(), o)
		require.NoError(t, err)
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	}
	clientTLS, err := grpcx.ClientTLS(caFile, "retrieval.nexusrag.svc")
	require.NoError(t, err)
	res, err := check(grpcx.ClientOptions{TLS: clientTLS})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, res.GetStatus())

	_, err = check(grpcx.ClientOptions{})
	require.Equal(t, codes.Unavailable, status.Code(err), "plaintext is refused")
	wrongName, err := grpcx.ClientTLS(caFile, "other.nexusrag.svc")
	require.NoError(t, err)
	_, err = check(grpcx.ClientOptions{TLS: wrongName})
	require.Error(t, err, "the certificate must name the server")

	// A renewed certificate (new serial) is picked up by the next connection.
	future := time.Now().Add(time.Minute)
	ca.issue(t, dir, "retrieval.nexusrag.svc", 3)
	require.NoError(t, os.Chtimes(certFile, future, future))
	var served *x509.Certificate
	verify := clientTLS.Clone()
	verify.VerifyPeerCertificate = func(_ [][]byte, chains [][]*x509.Certificate) error {
		served = chains[0][0]
		return nil
	}
	_, err = check(grpcx.ClientOptions{TLS: verify})
	require.NoError(t, err)
	require.EqualValues(t, 3, served.SerialNumber.Int64())

	_, err = grpcx.ClientTLS(filepath.Join(dir, "missing.crt"), "")
	require.ErrorContains(t, err, "GRPC_TLS_CA_FILE")
	_, err = grpcx.ServerTLS(caFile, keyFile)
	require.ErrorContains(t, err, "GRPC_TLS_CERT_FILE")
}
