/* history: the gitops/state branch (events, snapshot, promotions, approvals, signatures,
 * queries, DORA metrics, chain verification). Not implemented yet: see the history issue. */
#ifndef GITOPS_HISTORY_H
#define GITOPS_HISTORY_H
#endif
