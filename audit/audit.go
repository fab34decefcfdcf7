// Package audit is the tamper-evident audit trail: one hash chain of events
// per tenant, signed checkpoints, and verification that needs nothing but
// the events and the public key.
//
// An event's record is its canonical JSON (Event encoded by Encode) kept
// byte for byte as stored; its hash is
//
//	hash = SHA-256(prev || body)
//
// where prev is the previous record's hash in the same chain (32 zero bytes
// for the first) and body the record's bytes. A checkpoint signs a chain's
// length and head hash with Ed25519 (see Checkpoint.SignedBytes). Changing,
// removing, reordering or truncating events breaks a link or disagrees
// with a checkpoint, and VerifyChain names the first place it does.
//
// Every tenant has its own chain, keyed by its internal id; requests refused
// before any tenant is known (no or bad token) go to the deployment's own
// chain, SystemChain.
package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SystemChain is the chain of events that belong to no tenant (refusals
// before a tenant is known, deployment-wide admin actions).
const SystemChain = ""

// Kinds of event.
const (
	KindRequest   = "request"   // an authenticated MCP request
	KindToolCall  = "tool_call" // a tool call (also a request)
	KindRefusal   = "refusal"   // a request refused on the request path
	KindAdmin     = "admin"     // an admin action
	KindLifecycle = "lifecycle" // a tenant lifecycle step
)

// Outcomes.
const (
	OutcomeOK      = "ok"
	OutcomeError   = "error"   // served, but the tool or method failed
	OutcomeRefused = "refused" // refused by the request path
)

// Actor is who acted on behalf of the user (RFC 8693 "act"): set when an
// admin impersonates a tenant's user.
type Actor struct {
	Sub    string `json:"sub"`
	Issuer string `json:"iss,omitempty"`
}

// Event is one audited operation. Zero fields are omitted from its record.
type Event struct {
	// Time is when the operation started (UTC, microsecond precision in
	// the record).
	Time time.Time `json:"time"`
	// RequestID is the server's request id (as in logs and internal-error
	// messages).
	RequestID string `json:"request_id,omitempty"`
	// Tenant is the internal tenant id; "" for SystemChain events.
	Tenant string `json:"tenant,omitempty"`
	// ExternalID and Issuer are the IdP's tenant identifier and issuer.
	ExternalID string `json:"external_id,omitempty"`
	Issuer     string `json:"issuer,omitempty"`
	// User is the verified user id.
	User string `json:"user,omitempty"`
	// Actor is set under impersonation (RFC 8693 act).
	Actor *Actor `json:"act,omitempty"`
	// Kind is one of the Kind constants.
	Kind string `json:"kind"`
	// Method is the JSON-RPC method (or the admin/lifecycle operation).
	Method string `json:"method,omitempty"`
	// Tool is the tool of a tools/call.
	Tool string `json:"tool,omitempty"`
	// Outcome is one of the Outcome constants.
	Outcome string `json:"outcome"`
	// ErrorClass names why it failed or was refused (the refusal reason,
	// e.g. "invalid_token", "rate_limited_tenant", "internal").
	ErrorClass string `json:"error_class,omitempty"`
	// Latency is how long the operation took, in microseconds.
	LatencyMicros int64 `json:"latency_us,omitempty"`
	// Protocol is the MCP protocol revision of the request.
	Protocol string `json:"protocol,omitempty"`
	// TraceID is the W3C trace id, when the request carried one.
	TraceID string `json:"trace_id,omitempty"`
	// ArgsSize and ArgsSHA256 describe the tool arguments; Args holds them
	// only where the deployment stores arguments.
	ArgsSize   int             `json:"args_size,omitempty"`
	ArgsSHA256 string          `json:"args_sha256,omitempty"`
	Args       json.RawMessage `json:"args,omitempty"`
	// Detail is free-form context for admin and lifecycle events (never
	// secrets).
	Detail map[string]string `json:"detail,omitempty"`
}

// Chain is the chain the event belongs to: its tenant, or SystemChain.
func (e *Event) Chain() string { return e.Tenant }

// Hash is a SHA-256 chain hash.
type Hash [sha256.Size]byte

// String is the hash in lower-case hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText encodes the hash as hex.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText decodes a hex hash.
func (h *Hash) UnmarshalText(b []byte) error {
	if len(b) != 2*sha256.Size {
		return fmt.Errorf("audit: hash %q: want %d hex digits", b, 2*sha256.Size)
	}
	_, err := hex.Decode(h[:], b)
	return err
}

// Link computes a record's hash from its predecessor's hash and its body.
func Link(prev Hash, body []byte) Hash {
	h := sha256.New()
	h.Write(prev[:])
	h.Write(body)
	var out Hash
	h.Sum(out[:0])
	return out
}

// Record is one stored event: its place in its chain and its bytes.
type Record struct {
	// Chain is the tenant id ("" = SystemChain).
	Chain string `json:"chain"`
	// Seq is the 1-based position in the chain.
	Seq uint64 `json:"seq"`
	// Prev is the previous record's Hash (zero for Seq 1).
	Prev Hash `json:"prev"`
	// Hash is Link(Prev, Body).
	Hash Hash `json:"hash"`
	// Body is the event's canonical JSON, byte for byte as hashed.
	Body json.RawMessage `json:"event"`
}

// Event decodes the record's body.
func (r *Record) Event() (*Event, error) {
	var e Event
	if err := json.Unmarshal(r.Body, &e); err != nil {
		return nil, fmt.Errorf("audit: record %d of chain %q: %w", r.Seq, r.Chain, err)
	}
	return &e, nil
}

// Head is where a chain stands: its length and last hash.
type Head struct {
	Seq  uint64
	Hash Hash
}

// Next chains body after h and returns the record and the new head.
func (h Head) Next(chain string, body []byte) (Record, Head) {
	r := Record{Chain: chain, Seq: h.Seq + 1, Prev: h.Hash, Body: body}
	r.Hash = Link(h.Hash, body)
	return r, Head{Seq: r.Seq, Hash: r.Hash}
}

// ChainError says where a chain first fails to verify.
type ChainError struct {
	Chain string
	Seq   uint64 // the first record (or checkpoint count) that does not fit
	// Reason says what is wrong, e.g. "hash does not match its body".
	Reason string
}

func (e *ChainError) Error() string {
	name := e.Chain
	if name == SystemChain {
		name = "system"
	}
	return fmt.Sprintf("audit chain %s broken at event %d: %s", name, e.Seq, e.Reason)
}

// ErrBroken is what every *ChainError matches with errors.Is.
var ErrBroken = errors.New("audit: chain broken")

func (e *ChainError) Is(target error) bool { return target == ErrBroken }

// Verifier checks records of one chain in order, one at a time, so a
// chain of millions is verified without holding it in memory.
type Verifier struct {
	chain string
	head  Head
}

// NewVerifier starts verifying chain from its beginning.
func NewVerifier(chain string) *Verifier { return &Verifier{chain: chain} }

// Head is the head of the records verified so far.
func (v *Verifier) Head() Head { return v.head }

// Next checks the next record: it must be the next in sequence, link to
// the previous one, and hash to its stated hash.
func (v *Verifier) Next(r *Record) error {
	want := v.head.Seq + 1
	switch {
	case r.Chain != v.chain:
		return &ChainError{Chain: v.chain, Seq: want, Reason: fmt.Sprintf("record of chain %q inside it", r.Chain)}
	case r.Seq < want:
		return &ChainError{Chain: v.chain, Seq: r.Seq, Reason: fmt.Sprintf("event %d appears again after event %d (duplicated or reordered)", r.Seq, v.head.Seq)}
	case r.Seq > want:
		return &ChainError{Chain: v.chain, Seq: want, Reason: fmt.Sprintf("event %d is missing (next is %d)", want, r.Seq)}
	case r.Prev != v.head.Hash:
		return &ChainError{Chain: v.chain, Seq: r.Seq, Reason: "does not link to the previous event (removed, reordered or changed)"}
	case Link(r.Prev, r.Body) != r.Hash:
		return &ChainError{Chain: v.chain, Seq: r.Seq, Reason: "hash does not match its content (changed)"}
	}
	v.head = Head{Seq: r.Seq, Hash: r.Hash}
	return nil
}

// Check compares the verified records with a checkpoint of the same chain:
// a checkpoint beyond the records found means the chain was truncated; one
// within them must name the hash the chain had at that length, which the
// caller supplies with hashAt (the hash of record cp.Count).
func (v *Verifier) Check(cp *Checkpoint, hashAt func(seq uint64) (Hash, bool)) error {
	if cp.Chain != v.chain {
		return &ChainError{Chain: v.chain, Seq: cp.Count, Reason: fmt.Sprintf("checkpoint of chain %q", cp.Chain)}
	}
	if cp.Count > v.head.Seq {
		return &ChainError{Chain: v.chain, Seq: v.head.Seq + 1, Reason: fmt.Sprintf("a signed checkpoint covers %d events but only %d remain (truncated)", cp.Count, v.head.Seq)}
	}
	if cp.Count == 0 {
		return nil
	}
	h, ok := hashAt(cp.Count)
	if !ok || !bytes.Equal(h[:], cp.Head[:]) {
		return &ChainError{Chain: v.chain, Seq: cp.Count, Reason: "differs from the signed checkpoint at this event (rewritten)"}
	}
	return nil
}

// ErrConflict: an appended record is not the next of its chain (another
// writer got there first, or the caller's head is stale).
var ErrConflict = errors.New("audit: record is not the next of its chain")

// NewVerifierFrom starts verifying chain after from: for a chain whose
// oldest records were removed by retention, from is the Seq before the
// first kept record and its Prev.
func NewVerifierFrom(chain string, from Head) *Verifier { return &Verifier{chain: chain, head: from} }
