/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "cloud/cloud.h"

int main(void)
{
	fprintf(stderr, "edgeid-cloud: not built yet\n");
	return 1;
}
