package console

import "net/http"

// This file belongs to the lifecycle jobs page (brief C2), which replaces
// this stub: JobSource is what Options.Jobs provides, jobRoutes mounts
// its pages.

// JobSource feeds the jobs page.
type JobSource interface{}

func (c *Console) jobRoutes(mux *http.ServeMux) {
	mux.Handle("GET /console/jobs", c.admin(func(w http.ResponseWriter, r *http.Request, s *session) {
		c.coming(w, r, s, "Jobs")
	}))
}
