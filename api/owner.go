package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/tessera-cdp/tessera/topology"
)

// Reads of a profile's derived state (its feature values, its timeline)
// run where the profile's task runs: onOwner computes here when the task
// is local and otherwise asks the owner through its internal route, which
// serveLocal answers.

// onOwner returns local's result for profile id's task: computed here, or
// read from the instance that runs the task through path (the internal
// route that serves local there). what names the result in errors.
func onOwner[T any](ctx context.Context, rt StoreReader, p *Profiles, id, what, path string, local func(topology.TaskID) (T, error)) (T, error) {
	var zero T
	task, err := rt.TaskFor(profileGroup, []byte(id))
	if err != nil {
		return zero, err
	}
	out, err := local(task)
	if !errors.Is(err, topology.ErrNotLocal) {
		return out, err
	}
	ep, err := rt.Owner(ctx, task)
	if err != nil {
		return zero, err
	}
	var remote T
	if err := callPeer(ctx, p.client, p.token, peerURL(ep, path), nil, &remote); err != nil {
		return zero, fmt.Errorf("%s of %s from %s: %w", what, id, ep, err)
	}
	return remote, nil
}

// serveLocal answers an internal route with local's result for profile
// id's task, or 421 when the task does not run here.
func serveLocal[T any](w http.ResponseWriter, rt StoreReader, id string, local func(topology.TaskID) (T, error)) {
	task, err := rt.TaskFor(profileGroup, []byte(id))
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	out, err := local(task)
	switch {
	case errors.Is(err, topology.ErrNotLocal):
		writeError(w, http.StatusMisdirectedRequest, fmt.Sprintf("task %s does not run here", task))
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
	default:
		WriteJSON(w, http.StatusOK, out)
	}
}
