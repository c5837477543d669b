/* reconcile: the per-environment loop (resolve, render, plan, gate, apply, prune, health,
 * record), self-heal and auto-rollback. Not implemented yet: see the sync and daemon issues. */
#ifndef GITOPS_RECONCILE_H
#define GITOPS_RECONCILE_H
#endif
