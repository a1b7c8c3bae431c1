module weftpeernet

go 1.19
