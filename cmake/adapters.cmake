# SPDX-License-Identifier: MIT
# The optional foreign libraries weft's adapters (include/weft/adapters/)
# work with: hiredis, libcurl, c-ares. Each found one gives an imported
# target, weft_hiredis_target / weft_curl_target / weft_cares_target (empty
# when not found); nothing of weft itself depends on them. pkg-config first,
# then find_path + find_library.
find_package(PkgConfig QUIET)

# weft_find_foreign(VAR PCNAME HEADER LIBNAME)
function(weft_find_foreign var pcname header libname)
  set(${var} "" PARENT_SCOPE)
  if(PkgConfig_FOUND)
    pkg_check_modules(WEFT_PC_${var} QUIET IMPORTED_TARGET GLOBAL ${pcname})
    if(WEFT_PC_${var}_FOUND)
      set(${var} PkgConfig::WEFT_PC_${var} PARENT_SCOPE)
      return()
    endif()
  endif()
  find_path(WEFT_${var}_INCLUDE ${header})
  find_library(WEFT_${var}_LIBRARY ${libname})
  if(WEFT_${var}_INCLUDE AND WEFT_${var}_LIBRARY)
    add_library(weft_foreign_${libname} INTERFACE IMPORTED GLOBAL)
    set_target_properties(weft_foreign_${libname} PROPERTIES
      INTERFACE_INCLUDE_DIRECTORIES ${WEFT_${var}_INCLUDE}
      INTERFACE_LINK_LIBRARIES ${WEFT_${var}_LIBRARY})
    set(${var} weft_foreign_${libname} PARENT_SCOPE)
  endif()
endfunction()

if(NOT DEFINED weft_adapters_searched)
  set(weft_adapters_searched ON)
  weft_find_foreign(weft_hiredis_target hiredis hiredis/async.h hiredis)
  weft_find_foreign(weft_curl_target libcurl curl/curl.h curl)
  weft_find_foreign(weft_cares_target libcares ares.h cares)
  set(weft_adapters_missing "")
  foreach(dep hiredis curl cares)
    if(weft_${dep}_target)
      message(STATUS "weft adapters: ${dep} found")
    else()
      message(STATUS "weft adapters: ${dep} NOT found: its adapter's tests are not built")
      list(APPEND weft_adapters_missing ${dep})
    endif()
  endforeach()
endif()
