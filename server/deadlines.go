package server

import (
	"errors"
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
// arrive within ReadTimeout (readBody lifts the deadline once it has the
// body), and each write of the response must be accepted within
// WriteTimeout. The returned writer renews the write deadline before every
// write; done renews it once more for the final flush after the handler.
//
// Deadlines go on the connection (http.ResponseController); writers that
// have none, such as httptest.ResponseRecorder, are served as they are.
func (s *Server) bound(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, func()) {
	rc := http.NewResponseController(w)
	if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		// The deadline also bounds what net/http discards of a body the
		// handler did not read (a refused request), so an unauthenticated
		// client cannot dribble one either.
		_ = rc.SetReadDeadline(time.Now().Add(s.opts.ReadTimeout))
	}
	dw := &deadlineWriter{ResponseWriter: w, rc: rc, timeout: s.opts.WriteTimeout}
	dw.renew()
	if dw.unsupported {
		return w, func() {}
	}
	return dw, dw.renew
}

// liftReadDeadline ends the body's read deadline once the body is read:
// net/http then watches the idle connection for the client going away,
// and a deadline left in place would cancel the request's context.
func liftReadDeadline(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
}

// deadlineWriter renews the connection's write deadline before each write.
type deadlineWriter struct {
	http.ResponseWriter
	rc          *http.ResponseController
	timeout     time.Duration
	unsupported bool
}

func (d *deadlineWriter) renew() {
	if d.unsupported {
		return
	}
	if err := d.rc.SetWriteDeadline(time.Now().Add(d.timeout)); errors.Is(err, http.ErrNotSupported) {
		d.unsupported = true
	}
}

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
	_ = d.rc.Flush()
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
