package launch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// API calls the platform's HTTP API with a bearer key and unwraps the envelope.
type API struct {
	Base, Key string
	HTTP      *http.Client
}

// NewAPI is a client of base with key, keeping up to conns connections.
func NewAPI(base, key string, conns int) API {
	return API{Base: base, Key: key, HTTP: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}}}
}

// Call sends body as JSON (when not nil) and decodes the answer's data into out (when
// not nil); an answer other than 2xx is an error that quotes it.
func (a API) Call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.Base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.Key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := a.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, res.Status, bytes.TrimSpace(b))
	}
	if out == nil {
		return nil
	}
	var env struct{ Data json.RawMessage }
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if len(env.Data) == 0 {
		return errors.New(method + " " + path + ": answer has no data")
	}
	return json.Unmarshal(env.Data, out)
}
