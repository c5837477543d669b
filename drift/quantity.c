/* quantity: exact comparison of Kubernetes resource quantities ("500m" == "0.5", "1Gi" ==
 * "1073741824"), so a manifest's spelling is not mistaken for drift after the server rewrote it. */
#include <string.h>

#include "drift/drift.h"
#include "drift/drift_internal.h"

/* A quantity as sign * digits * 10^exp10, with digits a decimal integer without leading or
 * trailing zeros (trailing zeros move into exp10), so equal values have equal forms. Digits are
 * kept as text because 1Ei in milli-units and 1e18 overflow 64 bits; exact by construction. */
#define QDIGITS 160
typedef struct {
	int negative;
	char digits[QDIGITS]; /* most significant first, NUL-terminated; "0" for zero */
	long exp10;
} quantity;

/* digits (most significant first, length n) *= m, m small. Returns the new length or -1. */
static int digits_mul(char *d, int n, unsigned m)
{
	unsigned carry = 0;
	for (int i = n - 1; i >= 0; i--) {
		unsigned v = (unsigned)(d[i] - '0') * m + carry;
		d[i] = (char)('0' + v % 10);
		carry = v / 10;
	}
	while (carry) {
		if (n + 1 >= QDIGITS)
			return -1;
		memmove(d + 1, d, (size_t)n);
		d[0] = (char)('0' + carry % 10);
		carry /= 10;
		n++;
	}
	d[n] = '\0';
	return n;
}

static int parse_quantity(quantity *q, const char *s)
{
	memset(q, 0, sizeof(*q));
	const char *p = s;
	if (*p == '+' || *p == '-')
		q->negative = (*p++ == '-');
	int n = 0, seen_digit = 0, frac = 0, in_frac = 0;
	for (; (*p >= '0' && *p <= '9') || (*p == '.' && !in_frac); p++) {
		if (*p == '.') {
			in_frac = 1;
			continue;
		}
		seen_digit = 1;
		if (n == 0 && *p == '0') { /* leading zero: drop, but keep counting decimals */
			if (in_frac)
				frac++;
			continue;
		}
		if (n + 1 >= QDIGITS)
			return -1;
		q->digits[n++] = *p;
		if (in_frac)
			frac++;
	}
	if (!seen_digit)
		return -1;
	q->exp10 = -frac;
	int binary_pow = 0; /* power of 1024 */
	if (*p == '\0') {
	} else if (p[1] == 'i' && p[2] == '\0' && strchr("KMGTPE", *p)) {
		binary_pow = (int)(strchr("KMGTPE", *p) - "KMGTPE") + 1;
	} else if (p[1] == '\0' && strchr("numkMGTPE", *p)) {
		static const int pow10[] = {-9, -6, -3, 3, 6, 9, 12, 15, 18};
		q->exp10 += pow10[strchr("numkMGTPE", *p) - "numkMGTPE"];
	} else if (*p == 'e' || *p == 'E') {
		p++;
		int neg = 0;
		if (*p == '+' || *p == '-')
			neg = (*p++ == '-');
		if (!(*p >= '0' && *p <= '9'))
			return -1;
		long e = 0;
		for (; *p >= '0' && *p <= '9'; p++) {
			e = e * 10 + (*p - '0');
			if (e > 100000)
				return -1;
		}
		if (*p)
			return -1;
		q->exp10 += neg ? -e : e;
	} else {
		return -1;
	}
	if (n == 0) { /* zero, whatever the suffix or sign */
		strcpy(q->digits, "0");
		q->negative = 0;
		q->exp10 = 0;
		return 0;
	}
	q->digits[n] = '\0';
	for (int i = 0; i < binary_pow; i++)
		if ((n = digits_mul(q->digits, n, 1024)) < 0)
			return -1;
	while (n > 1 && q->digits[n - 1] == '0') {
		q->digits[--n] = '\0';
		q->exp10++;
	}
	return 0;
}

int drift__quantity_parse_ok(const char *s)
{
	quantity q;
	return s && parse_quantity(&q, s) == 0;
}

int drift_quantity_equal(int *equal, const char *a, const char *b)
{
	quantity qa, qb;
	*equal = 0;
	if (!a || parse_quantity(&qa, a) < 0)
		return gitops_error_set(GITOPS_EINVALID, "not a quantity: \"%s\"", a ? a : "(null)");
	if (!b || parse_quantity(&qb, b) < 0)
		return gitops_error_set(GITOPS_EINVALID, "not a quantity: \"%s\"", b ? b : "(null)");
	*equal = qa.negative == qb.negative && qa.exp10 == qb.exp10 &&
		 strcmp(qa.digits, qb.digits) == 0;
	return 0;
}
