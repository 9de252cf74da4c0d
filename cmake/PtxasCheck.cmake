# The register and shared-memory check of the CUDA kernels: each kernels/*.cu is compiled for sm_80 and
# sm_90 with `-Xptxas -v`, and scripts/check-ptxas.py fails the build if a kernel spills registers or
# declares more than 48 KiB of static shared memory (the rest must come from launch()'s dynamic request).
# This compile is separate from the library's, which would only print the report.
function(heed_add_ptxas_check)
  find_package(Python3 COMPONENTS Interpreter REQUIRED)
  set(kernels_dir ${PROJECT_SOURCE_DIR}/kernels)
  file(GLOB sources CONFIGURE_DEPENDS ${kernels_dir}/*.cu)
  file(GLOB headers CONFIGURE_DEPENDS ${kernels_dir}/*.h ${kernels_dir}/common/*.h)
  set(stamps)
  foreach(source ${sources})
    get_filename_component(name ${source} NAME_WE)
    foreach(arch ${CMAKE_CUDA_ARCHITECTURES})
      set(out ${CMAKE_BINARY_DIR}/ptxas/${name}.sm_${arch})
      add_custom_command(
        OUTPUT ${out}.ok
        COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/scripts/check-ptxas.py --run ${CMAKE_CUDA_COMPILER}
                -std=c++17 -arch=sm_${arch} -I${kernels_dir} -I${PROJECT_SOURCE_DIR}/include -I${PROJECT_SOURCE_DIR}/src
                -I${PROJECT_SOURCE_DIR} -c ${source} -o ${out}.o
        COMMAND ${CMAKE_COMMAND} -E touch ${out}.ok
        DEPENDS ${source} ${headers} ${PROJECT_SOURCE_DIR}/scripts/check-ptxas.py
        COMMENT "ptxas check of ${name}.cu for sm_${arch}: no spills, static shared memory within 48 KiB"
        VERBATIM)
      list(APPEND stamps ${out}.ok)
    endforeach()
  endforeach()
  file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/ptxas)
  add_custom_target(ptxas_check ALL DEPENDS ${stamps})
endfunction()
