package httpsink

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/takedown-project/takedown/internal/classify"
)

// h2scratch is the per-request memory of an HTTP/2 request.
type h2scratch struct {
	buf  []byte
	body []byte
}

// serveH2 records and answers one HTTP/2 request (net/http has parsed it
// and enforces the header and stream limits).
func (s *Server) serveH2(w http.ResponseWriter, r *http.Request) {
	sc, _ := r.Context().Value(connKey{}).(*sinkConn)
	if sc == nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	sc.requests.Add(1)
	e := s.newEvent(sc)
	defer s.putEvent(e)
	e.HTTPMethod = r.Method
	e.HTTPPath = r.RequestURI
	if r.Host != "" {
		e.Domain = hostName([]byte(r.Host))
	}
	e.HTTPUserAgent = r.Header.Get("User-Agent")
	e.HTTPReferer = r.Header.Get("Referer")
	e.HTTPForwardedBy = strings.Join(r.Header.Values("X-Forwarded-For"), ", ")
	e.HTTPContentType = r.Header.Get("Content-Type")

	x := s.h2scratches.Get().(*h2scratch)
	defer s.h2scratches.Put(x)
	x.body = x.body[:0]
	hash := sha256.New()
	var n int64
	limit := s.cfg.MaxBodyBytes
	var readErr error
	for n <= limit {
		k, err := r.Body.Read(x.buf[:min(int64(len(x.buf)), limit+1-n)])
		if k > 0 {
			if n+int64(k) > limit {
				k = int(limit - n)
				readErr = errBodyTooLarge
			}
			hash.Write(x.buf[:k])
			if room := s.cfg.MatchBytes - len(x.body); room > 0 {
				x.body = append(x.body, x.buf[:min(k, room)]...)
			}
			n += int64(k)
		}
		if readErr != nil {
			break
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			readErr = err
			break
		}
	}
	e.Bytes = n
	if n > 0 {
		var sum [sha256.Size]byte
		e.PayloadSHA256 = hex.EncodeToString(hash.Sum(sum[:0]))
		e.PayloadHead = x.body[:min(len(x.body), s.cfg.HeadBytes)]
	}
	var re *reqError
	if readErr != nil {
		re = readError(sc, readErr, "body")
		if readErr != errBodyTooLarge && re.status == 0 {
			re.msg = "body: " + readErr.Error()
		}
		e.Error = re.msg
		if re.limit != "" {
			s.m.limits.WithLabelValues(re.limit).Inc()
		}
	}
	res := s.classify(e, &classify.Request{
		Method: e.HTTPMethod, Path: e.HTTPPath, UserAgent: e.HTTPUserAgent,
		Headers: r.Header, Body: x.body,
	})
	s.record(e, nil) // before the answer, as on HTTP/1
	status := 0
	switch {
	case re != nil && re.status != 0:
		status = re.status
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(status)
	case re != nil:
		// The stream broke; net/http resets it.
	default:
		resp := res.Response
		if resp == nil {
			resp = &s.dflt
		}
		status = resp.Status
		hd := w.Header()
		if resp.ContentType != "" {
			hd.Set("Content-Type", resp.ContentType)
		}
		hd.Set("Content-Length", strconv.Itoa(len(resp.Body)))
		w.WriteHeader(status)
		if r.Method != http.MethodHead && resp.Body != "" {
			io.WriteString(w, resp.Body) //nolint:errcheck
		}
	}
	if status != 0 {
		s.m.request(protoHTTPS, status)
	}
}
