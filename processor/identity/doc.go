// Package identity resolves the identifiers of every event into one live
// profile per customer, partitioned, with a message-passing protocol
// between two stages of the topology:
//
//   - the identifier stage, keyed by identifier (<app>.events and
//     <app>.identity-links, store "identities": identifier → owning profile);
//   - the profile stage, keyed by profile id (<app>.profile-ops, store
//     "profiles": the profile and its protocol state).
//
// # Protocol
//
// An event is routed by its highest-priority identifier r. The identifier
// stage looks r up; with no owner it creates a profile whose id is derived
// from r (so a replay makes the same ids) and records the owner. The event
// goes to the owner as EVENT. The profile applies it and, for each other
// identifier of the event that fits its limits, reserves it (adds it to its
// list) and sends LINK to the identifier's partition.
//
// LINK of an unowned identifier makes the claimant its owner. LINK of an
// identifier owned by another profile starts a merge: profiles are totally
// ordered by (created, id) and the later one, the loser, always folds into
// the earlier, the winner, so chains of merges end and never cycle.
// MERGE_REQUEST goes to the loser; the loser sends OFFER (its identifiers)
// to the winner; the winner checks the limits on the union and answers
// ACCEPT (reserving the loser's identifiers) or REFUSE (and sends DROP of
// the identifier that caused the merge to the profile that reserved it).
// On ACCEPT the loser sends ABSORB (its whole state) to the winner, leaves a
// redirect, and sends REPOINT for each of its identifiers, which the
// identifier stage applies only if the loser still owns it.
//
// A profile with an offer out (offering) or an accepted loser whose state
// has not arrived (absorbing) is busy: it queues what it receives, except
// the answer it waits for, and replays the queue when the answer comes. It
// only waits on earlier profiles (an offer goes to a winner) or on a loser
// that answers at once, so waiting never cycles. Everything that reaches a
// merged profile follows its redirect to an earlier one.
//
// Under the engine's exactly-once guarantee each step is a state change and
// its messages committed together, so a crash or rebalance replays a step
// whole or not at all.
//
// # Invariants (checked by the property tests against a single-threaded
// reference, across partition counts and interleavings)
//
//   - INVARIANT: at quiescence every identifier belongs to exactly one live
//     profile, and the identifier stage names that profile as its owner.
//   - INVARIANT: no live profile holds more identifiers of a type than its
//     limit, nor more than the total limit.
//   - INVARIANT: every event is counted exactly once, in exactly one live
//     profile.
//   - INVARIANT: without limit conflicts, the live profiles are exactly the
//     connected components of the identifier graph.
package identity
