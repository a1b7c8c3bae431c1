// SPDX-License-Identifier: MIT
module weftpeer

go 1.19
