package server

import (
	"net/http"
	"time"
)

// Defaults of the Options that bound slow clients. The configuration
// layer uses the same values.
const (
	// DefaultReadHeaderTimeout: headers are a few hundred bytes; ten
	// seconds is generous for any real client.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultReadTimeout: a whole request body (at most MaxBodyBytes,
	// 1 MiB by default) must arrive within it; 30 s allows about 35 KB/s.
	DefaultReadTimeout = 30 * time.Second
	// DefaultWriteTimeout: a client that accepts none of a 64 KiB part
	// of its response for 30 s has stopped reading; it is the bound the
	// protocol library itself puts on replaying a stream.
	DefaultWriteTimeout = 30 * time.Second
	// DefaultIdleTimeout: how long a kept-alive connection may wait for
	// its next request.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultMaxBodyReadsPerTenant: a body normally arrives within a
	// round trip, so even a busy tenant has a handful arriving at once;
	// 32 slow ones hold at most 32 × MaxBodyBytes of buffers.
	DefaultMaxBodyReadsPerTenant = 32
)

// writeChunk is the most written to the client under one write deadline,
// so that a large response needs a client that keeps reading, not a fast
// one.
const writeChunk = 64 << 10

// bound puts the request's deadlines in place: its body, if any, must
// arrive within ReadTimeout of the end of its headers, and each write of
// the response must be accepted within WriteTimeout. The returned writer
// renews the write deadline before every write; the caller renews it once
// more (renew) for the final flush after the handler. (A writer rather
// than a done func: the method value would cost an allocation per request.)
//
// The read deadline needs no lifting: when a body has been read to its
// end, net/http clears the connection's read deadline itself before it
// watches the connection for the client going away, so a long tool call
// is not cut (TestSlowToolCallNotCut). It also bounds what net/http
// discards of a body the handler did not read (a refused request), so an
// unauthenticated client cannot dribble one either.
//
// Deadlines go on the connection, whatever http.Server runs the handler
// (through http.ResponseController if w wraps the server's writer);
// writers without them, such as httptest.ResponseRecorder, are served as
// they are: bound returns nil for them.
func (s *Server) bound(w http.ResponseWriter, r *http.Request) *deadlineWriter {
	dl, ok := w.(deadliner) // net/http's own writer
	if !ok {
		if _, wraps := w.(interface{ Unwrap() http.ResponseWriter }); !wraps {
			return nil
		}
		dl = http.NewResponseController(w)
	}
	now := time.Now()
	if dl.SetWriteDeadline(now.Add(s.opts.WriteTimeout)) != nil {
		return nil
	}
	if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		_ = dl.SetReadDeadline(now.Add(s.opts.ReadTimeout))
	}
	return &deadlineWriter{ResponseWriter: w, dl: dl, timeout: s.opts.WriteTimeout}
}

// deadliner is what http.ResponseController and net/http's response
// writers have in common.
type deadliner interface {
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// deadlineWriter renews the connection's write deadline before each write.
type deadlineWriter struct {
	http.ResponseWriter
	dl      deadliner
	timeout time.Duration
}

func (d *deadlineWriter) renew() { _ = d.dl.SetWriteDeadline(time.Now().Add(d.timeout)) }

func (d *deadlineWriter) WriteHeader(code int) {
	d.renew()
	d.ResponseWriter.WriteHeader(code)
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	if len(p) <= writeChunk {
		d.renew()
		return d.ResponseWriter.Write(p)
	}
	n := 0
	for n < len(p) {
		d.renew()
		m, err := d.ResponseWriter.Write(p[n:min(len(p), n+writeChunk)])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Flush sends what is buffered; the protocol library flushes each event
// of a stream.
func (d *deadlineWriter) Flush() {
	d.renew()
	if f, ok := d.ResponseWriter.(http.Flusher); ok {
		f.Flush()
		return
	}
	_ = http.NewResponseController(d.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection.
func (d *deadlineWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }

// origin returns the writer net/http gave the handler, for what only it
// can do: http.MaxBytesReader closes the connection after a body that is
// too large only through it.
func origin(w http.ResponseWriter) http.ResponseWriter {
	if d, ok := w.(*deadlineWriter); ok {
		return d.ResponseWriter
	}
	return w
}
