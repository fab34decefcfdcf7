package audit

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
)

// opensslKey was made with "openssl genpkey -algorithm ed25519"; its
// public key, from "openssl pkey -pubout", is opensslPub.
const (
	opensslKey = `-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIB1iy5gy/8T+or7nNydsI3RXNGlhl+K04ulmCfBgAJtc
-----END PRIVATE KEY-----
`
	opensslPub = "ed25519:12lbK+lZ5kRpChGTnFud/8/gkJjWUsJieOWRoStglXM="
	// An ECDSA P-256 key, also PKCS #8.
	ecKey = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg1OHXU+P5xAcuRkmJ
2nPcev0wPhRvN1P9cpX/M9QhDiehRANCAAQjcxK0v2em2eVXfIigoNcZUBgmygJV
0qzVC6FUJQEI0Ml8s2LPp+gfbUoxBPdlrg07/O119g+cm4ATXVeAEKHo
-----END PRIVATE KEY-----
`
)

func TestPrivateKeyRoundTrip(t *testing.T) {
	b, err := FormatPrivateKey(testKey)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "-----BEGIN PRIVATE KEY-----\n") {
		t.Errorf("FormatPrivateKey:\n%s", b)
	}
	key, err := ParsePrivateKey(b)
	if err != nil || !key.Equal(testKey) {
		t.Fatalf("ParsePrivateKey(FormatPrivateKey(k)) = %v, %v", key, err)
	}
}

// TestParseOpenSSLKey: a key made with OpenSSL is read, and its public
// key is the one OpenSSL prints.
func TestParseOpenSSLKey(t *testing.T) {
	key, err := ParsePrivateKey([]byte(opensslKey))
	if err != nil {
		t.Fatal(err)
	}
	if got := FormatPublicKey(key.Public().(ed25519.PublicKey)); got != opensslPub {
		t.Errorf("public key %s, want %s", got, opensslPub)
	}
}

func TestParsePrivateKeyRefuses(t *testing.T) {
	for name, in := range map[string]string{
		"empty":       "",
		"not PEM":     "ed25519:12lbK+lZ5kRpChGTnFud/8/gkJjWUsJieOWRoStglXM=",
		"public key":  "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA12lbK+lZ5kRpChGTnFud/8/gkJjWUsJieOWRoStglXM=\n-----END PUBLIC KEY-----\n",
		"ECDSA":       ecKey,
		"bad DER":     "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
		"secret text": "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n",
	} {
		_, err := ParsePrivateKey([]byte(in))
		if !errors.Is(err, ErrBadKey) {
			t.Errorf("%s: err = %v, want ErrBadKey", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "c2VjcmV0") {
			t.Errorf("%s: the error quotes the input: %v", name, err)
		}
	}
	if _, err := FormatPrivateKey(ed25519.PrivateKey{1, 2}); !errors.Is(err, ErrBadKey) {
		t.Errorf("FormatPrivateKey of a short key: %v", err)
	}
}
