package auth

import (
	"errors"
	"fmt"
)

// Errors returned by BearerToken and Verifier.Verify. Every error this
// package returns has an Error() text that is safe to show the client (for
// example as the error_description of a WWW-Authenticate challenge): it
// names the check that failed and never contains the token.
var (
	// ErrMissingToken: the request has no Authorization header. Answer 401
	// with a challenge that carries no error code (RFC 6750 §3.1).
	ErrMissingToken = errors.New("no bearer token: send \"Authorization: Bearer <access token>\"")

	// ErrMalformedHeader: an Authorization header is present but is not
	// exactly one "Bearer <token68>" (wrong scheme, empty, two tokens,
	// illegal characters, or the header repeated). Answer 400
	// invalid_request.
	ErrMalformedHeader = errors.New("malformed Authorization header: expected exactly one \"Bearer <access token>\"")

	// ErrInvalidToken: the token failed verification (malformed, bad
	// signature, disallowed algorithm, unknown key, wrong issuer or
	// audience, expired, not yet valid, ...). Every such failure wraps it;
	// the error's text is the specific reason. Answer 401 invalid_token.
	ErrInvalidToken = errors.New("invalid token")

	// ErrMissingTenantClaim: the token verified but does not carry a usable
	// tenant claim (missing, not a string, or empty). The error is a
	// *ClaimError naming the claim. It does not wrap ErrInvalidToken: the
	// token is genuine, the caller needs one issued for an organization.
	// Answer 401 invalid_token (or 403) with the error's text.
	ErrMissingTenantClaim = errors.New("token carries no tenant claim")

	// ErrKeysUnavailable: no signing keys are loaded because the JWK Set
	// could not be fetched (the identity provider is unreachable or
	// answered with an error). Nothing is wrong with the token; answer 503
	// and retry later.
	ErrKeysUnavailable = errors.New("signing keys are unavailable: the identity provider's JWK Set could not be fetched; retry later")
)

// TokenError is the error Verify returns when a token fails verification.
// Error() is the reason alone ("token expired at 2026-01-02T15:04:05Z"),
// safe to show the client. errors.Is(err, ErrInvalidToken) reports true.
type TokenError struct {
	// Reason says which check failed.
	Reason string
	cause  error
}

func (e *TokenError) Error() string { return e.Reason }

// Is makes errors.Is(err, ErrInvalidToken) true.
func (e *TokenError) Is(target error) bool { return target == ErrInvalidToken }

// Unwrap returns the underlying library error, if any.
func (e *TokenError) Unwrap() error { return e.cause }

func invalid(cause error, format string, args ...any) error {
	return &TokenError{Reason: fmt.Sprintf(format, args...), cause: cause}
}

// ClaimError reports a token that verified but lacks a usable tenant claim.
// errors.Is(err, ErrMissingTenantClaim) reports true.
type ClaimError struct {
	// Claim is the configured claim name or path ("org_id", "tid", ...).
	Claim string
	// Problem is "missing", "not a string" or "empty".
	Problem string
}

// Problems a ClaimError reports.
const (
	ClaimMissing   = "missing"
	ClaimNotString = "not a string"
	ClaimEmpty     = "empty"
)

func (e *ClaimError) Error() string {
	switch e.Problem {
	case ClaimNotString:
		return fmt.Sprintf("token's tenant claim '%s' is not a string", e.Claim)
	case ClaimEmpty:
		return fmt.Sprintf("token's tenant claim '%s' is empty", e.Claim)
	default:
		return fmt.Sprintf("token carries no tenant claim '%s'", e.Claim)
	}
}

// Is makes errors.Is(err, ErrMissingTenantClaim) true.
func (e *ClaimError) Is(target error) bool { return target == ErrMissingTenantClaim }

// quote renders an untrusted claim or header value for an error message:
// Go-quoted (so control characters are escaped) and cut to a sane length.
func quote(s string) string {
	const max = 120
	if len(s) > max {
		s = s[:max] + "…"
	}
	return fmt.Sprintf("%q", s)
}
