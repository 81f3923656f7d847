//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"

	"github.com/orrery/orrery/internal/apicompare"
)

// The API's envelope and answers, as the comparison reads them.
type (
	apiResponse  = apicompare.Response
	queryData    = apicompare.QueryData
	sample       = apicompare.Sample
	seriesResult = apicompare.Series
)

func get(base, path string, params url.Values) (*apiResponse, error) {
	resp, err := http.PostForm(base+path, params)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var out apiResponse
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("status %d, body %q: %w", resp.StatusCode, tail(body, 300), err)
	}
	return &out, nil
}

// diffResponses returns "" when two API responses carry the same result:
// same status and error type, same annotations, same series, timestamps
// equal, values within 1e-9 relative (NaN equals NaN). Annotations are
// compared as sets: Prometheus keeps them in a map and lists them in no
// fixed order.
func diffResponses(want, got *apiResponse) string {
	if want.Status != got.Status || want.ErrorType != got.ErrorType {
		return fmt.Sprintf("status %s/%s (%s) vs %s/%s (%s)", want.Status, want.ErrorType, want.Error, got.Status, got.ErrorType, got.Error)
	}
	if want.Status != "success" {
		return ""
	}
	if !slices.Equal(sortedAnnotations(want.Warnings), sortedAnnotations(got.Warnings)) || !slices.Equal(sortedAnnotations(want.Infos), sortedAnnotations(got.Infos)) {
		return fmt.Sprintf("annotations %v %v vs %v %v", want.Warnings, want.Infos, got.Warnings, got.Infos)
	}
	return apicompare.DiffData(want.Data, got.Data, nil)
}

func sortedAnnotations(s []string) []string {
	return slices.Sorted(slices.Values(s))
}
