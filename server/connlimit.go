package server

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Connections per client address (Options.MaxConnsPerClient): Serve wraps
// its listener so that one IP address cannot hold more than its share of
// the replica's connections (each costs a goroutine and buffers before
// any request on it is authenticated). Over the cap a connection is
// closed as soon as it is accepted.
//
// Behind a proxy or load balancer every connection comes from the proxy's
// address: set server.max_conns_per_client to 0 there (or above the
// proxy's own connection pool), and limit clients at the proxy.

// connLogInterval is the least time between two log lines about refused
// connections; the ones in between are counted in the next line.
const connLogInterval = 10 * time.Second

// connLimiter counts open connections by client IP address.
type connLimiter struct {
	max     int
	mu      sync.Mutex
	open    map[netip.Addr]int // only addresses with connections open
	refused prometheus.Counter
	log     *slog.Logger
	now     func() time.Time
	lastLog atomic.Int64 // unix nanoseconds of the last log line
	since   atomic.Int64 // connections refused since then
}

func newConnLimiter(max int, log *slog.Logger, now func() time.Time) *connLimiter {
	return &connLimiter{
		max:  max,
		open: map[netip.Addr]int{},
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tenantmcp_connections_refused_total",
			Help: "Connections closed as soon as they were accepted because their client IP address had server.max_conns_per_client open already.",
		}),
		log: log,
		now: now,
	}
}

// limitConns wraps ln with the server's connection limit; ln itself when
// there is none.
func (s *Server) limitConns(ln net.Listener) net.Listener {
	if s.conns == nil {
		return ln
	}
	return &limitListener{Listener: ln, l: s.conns}
}

// clientAddr is the IP address a connection is counted under: IPv4
// addresses mapped into IPv6 count as the IPv4 address, and an IPv6 zone
// is dropped. ok is false for addresses that are not IP (a Unix socket):
// those are not limited.
func clientAddr(a net.Addr) (addr netip.Addr, ok bool) {
	switch a := a.(type) {
	case *net.TCPAddr:
		addr, ok = netip.AddrFromSlice(a.IP)
	default:
		ap, err := netip.ParseAddrPort(a.String())
		addr, ok = ap.Addr(), err == nil
	}
	if !ok {
		return netip.Addr{}, false
	}
	return addr.Unmap().WithZone(""), true
}

func (l *connLimiter) acquire(addr netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[addr] >= l.max {
		return false
	}
	l.open[addr]++
	return true
}

func (l *connLimiter) release(addr netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.open[addr] - 1; n > 0 {
		l.open[addr] = n
	} else {
		delete(l.open, addr)
	}
}

// reject counts a refused connection and logs it, at most once per
// connLogInterval.
func (l *connLimiter) reject(addr netip.Addr) {
	l.refused.Inc()
	l.since.Add(1)
	now := l.now().UnixNano()
	last := l.lastLog.Load()
	if last != 0 && now-last < int64(connLogInterval) || !l.lastLog.CompareAndSwap(last, now) {
		return
	}
	l.log.Warn("connections refused: a client address has server.max_conns_per_client open already",
		"client", addr.String(), "max", l.max, "refused", l.since.Swap(0), "log_interval", connLogInterval)
}

// limitListener closes, as soon as it accepts them, connections from an
// address that has its maximum open; the others are counted until closed.
type limitListener struct {
	net.Listener
	l *connLimiter
}

func (ln *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr, ok := clientAddr(c.RemoteAddr())
		if !ok {
			return c, nil
		}
		if !ln.l.acquire(addr) {
			ln.l.reject(addr) // counted and logged by the time the client sees the close
			c.Close()
			continue
		}
		return &limitedConn{Conn: c, l: ln.l, addr: addr}, nil
	}
}

// limitedConn gives its address's place back when it is closed (once,
// however often net/http closes it).
type limitedConn struct {
	net.Conn
	l      *connLimiter
	addr   netip.Addr
	closed atomic.Bool
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) {
		c.l.release(c.addr)
	}
	return err
}

// CloseWrite lets net/http half-close the connection after a response it
// ends the connection with (a body too large, say), so that the client
// reads the response before the connection is reset.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
