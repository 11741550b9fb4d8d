package segment

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/tessera-cdp/tessera/connectors/ingest"
	"github.com/tessera-cdp/tessera/schemas"
	"github.com/valyala/fastjson"
)

// parseBatch validates a parsed batch body,
//
//	{"batch": [event, …], "sentAt": "…", "context": {…}, "integrations": {…}, "writeKey": "…"}
//
// and completes its events: the valid ones go to st.evs (with their batch
// index in st.index), the invalid ones to st.rejected and st.rejections
// (for the invalid-events topic, with source "http:<path>[i]"). A batch
// that is wrong as a whole — not an object, no batch array, over a limit,
// a bad shared field — is an error and fills nothing.
func (st *state) parseBatch(v *fastjson.Value, received time.Time, path string) *apiError {
	obj, err := v.Object()
	if err != nil {
		return badRequest("", "a batch request must be a JSON object with a batch array, got %s", v.Type())
	}
	events := obj.Get("batch")
	if events == nil || events.Type() != fastjson.TypeArray {
		return badRequest("batch", "is required and must be an array of events")
	}
	items, _ := events.Array()
	if len(items) > schemas.MaxBatchEvents {
		return &apiError{status: http.StatusBadRequest, body: errorBody{
			Error: fmt.Sprintf("batch has %d events, the limit is %d", len(items), schemas.MaxBatchEvents),
			Limit: "events_per_batch",
			Max:   schemas.MaxBatchEvents,
		}}
	}
	in := schemas.Input{ReceivedAt: received}
	if s := obj.Get("sentAt"); s != nil && s.Type() != fastjson.TypeNull {
		if s.Type() != fastjson.TypeString {
			return badRequest("sentAt", "must be an ISO-8601 string, got %s", s.Type())
		}
		in.SentAt = string(s.GetStringBytes())
		if _, err := schemas.ParseTimestamp(in.SentAt); err != nil {
			return badRequest("sentAt", "%v", err)
		}
	}
	shared := 0
	for _, name := range [...]string{"context", "integrations"} {
		x := obj.Get(name)
		if x == nil || x.Type() == fastjson.TypeNull {
			continue
		}
		if x.Type() != fastjson.TypeObject {
			return badRequest(name, "must be an object, got %s", x.Type())
		}
		// Measured without keeping the encoding: the body buffer is
		// reused, so the scratch is the state's own.
		st.scratch = schemas.AppendJSON(st.scratch[:0], x)
		shared += len(st.scratch)
		if name == "context" {
			in.Context = x
		} else {
			in.Integrations = x
		}
	}
	if shared > MaxBatchContextBytes {
		return &apiError{status: http.StatusBadRequest, body: errorBody{
			Error: fmt.Sprintf("the batch's context and integrations are %d bytes, the limit is %d (8 KB): they are copied into every event",
				shared, MaxBatchContextBytes),
			Limit: "batch_context_bytes",
			Max:   MaxBatchContextBytes,
		}}
	}
	for i, item := range items {
		ev, events, err := st.n.NormalizeTo(st.events, item, in)
		st.events = events
		if err != nil {
			st.rejected = append(st.rejected, rejectedEvent{Index: i, Error: err.Error()})
			st.rejections = append(st.rejections, ingest.Rejection{
				Raw:    schemas.AppendJSON(nil, item),
				Reason: err.Error(),
				Source: "http:" + path + "[" + strconv.Itoa(i) + "]",
			})
			continue
		}
		st.evs = append(st.evs, ev)
		st.index = append(st.index, i)
	}
	return nil
}

func badRequest(field, format string, args ...any) *apiError {
	reason := fmt.Sprintf(format, args...)
	msg := reason
	if field != "" {
		msg = field + ": " + reason
	}
	return &apiError{status: http.StatusBadRequest, body: errorBody{Error: msg, Field: field, Reason: reason}}
}
