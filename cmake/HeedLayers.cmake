# The layers of Heed as targets, so that the build, not a convention, keeps each layer to the ones below it.
#
# A layer is an object library whose sources see only their own headers and those of the layers it is
# declared on (BELOW), transitively. One include tree would show every header to every source, so each
# layer gets its own: <build>/layers/<name>/ holds a link to each of its headers, under the name that
# sources include it by (heed/core/tensor.h for include/heed/core/tensor.h, core/gemm.h for
# src/core/gemm.h, kernels/adam.h for kernels/adam.h). A source that includes a header of a layer above
# its own, or of no layer it is declared on, then fails to compile: "No such file or directory".
# The library, libheed, is assembled from the layers' object files.

# The name a header is included by: its path below include/, below src/, or below the source tree.
function(heed_include_name header out)
  foreach(root ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR})
    file(RELATIVE_PATH name ${root} ${header})
    if(NOT name MATCHES "^\\.\\./")
      set(${out} ${name} PARENT_SCOPE)
      return()
    endif()
  endforeach()
endfunction()

# The include tree of layer <name>, holding `headers`; sets <out> to its folder.
function(heed_layer_tree name out)
  set(tree ${PROJECT_BINARY_DIR}/layers/${name})
  file(REMOVE_RECURSE ${tree})
  file(MAKE_DIRECTORY ${tree})
  foreach(header ${ARGN})
    heed_include_name(${header} include_name)
    get_filename_component(folder ${tree}/${include_name} DIRECTORY)
    file(MAKE_DIRECTORY ${folder})
    file(CREATE_LINK ${header} ${tree}/${include_name} SYMBOLIC)
  endforeach()
  set(${out} ${tree} PARENT_SCOPE)
endfunction()

# heed_layer(<name> SOURCES <files> HEADERS <files> BELOW <layers>): the object library heed_<name>.
function(heed_layer name)
  cmake_parse_arguments(LAYER "" "" "SOURCES;HEADERS;BELOW" ${ARGN})
  heed_layer_tree(${name} tree ${LAYER_HEADERS})
  add_library(heed_${name} OBJECT ${LAYER_SOURCES})
  target_include_directories(heed_${name} PUBLIC ${tree})
  foreach(below ${LAYER_BELOW})
    target_link_libraries(heed_${name} PUBLIC heed_${below})
  endforeach()
  target_link_libraries(heed_${name} PRIVATE heed_dependencies)
endfunction()

# The usual layer: sources in src/<name>, public headers in include/heed/<name>, internal ones in src/<name>.
function(heed_src_layer name)
  cmake_parse_arguments(LAYER "" "" "BELOW" ${ARGN})
  heed_src_layer_files(${name} sources headers)
  heed_layer(${name} SOURCES ${sources} HEADERS ${headers} BELOW ${LAYER_BELOW})
endfunction()

# The sources and headers of the usual layer <name>.
function(heed_src_layer_files name sources_out headers_out)
  file(GLOB sources CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/${name}/*.cc)
  if(HEED_CUDA)
    file(GLOB cuda_sources CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/${name}/*.cu)
    list(FILTER cuda_sources EXCLUDE REGEX "${HEED_CUDA_EXCLUDE}")
    list(APPEND sources ${cuda_sources})
  endif()
  file(GLOB headers CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/include/heed/${name}/*.h ${PROJECT_SOURCE_DIR}/src/${name}/*.h)
  set(${sources_out} ${sources} PARENT_SCOPE)
  set(${headers_out} ${headers} PARENT_SCOPE)
endfunction()
