// SPDX-License-Identifier: MIT
module weftpeernet

go 1.19
