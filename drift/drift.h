/* drift: compares desired objects with live ones (normalization, ownership-aware comparison,
 * classification, secret masking, diff output). No I/O. Not implemented yet: see issue
 * "drift/ and sync". */
#ifndef GITOPS_DRIFT_H
#define GITOPS_DRIFT_H
#endif
