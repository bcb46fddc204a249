// cadre/cadre.hpp — the whole client API: include this one header.
//
// cadre turns one machine into a cluster of engine processes driven from a client program, with the
// programming model of IPython.parallel's DirectView, over shared memory.
#pragma once

#include <cadre/async_map_result.hpp>
#include <cadre/async_result.hpp>
#include <cadre/client.hpp>
#include <cadre/cluster.hpp>
#include <cadre/codec.hpp>
#include <cadre/direct_view.hpp>
#include <cadre/engine.hpp>
#include <cadre/engine_view.hpp>
#include <cadre/errors.hpp>
#include <cadre/export.hpp>
#include <cadre/load_balanced_view.hpp>
#include <cadre/map_calls.hpp>
#include <cadre/namespace.hpp>
#include <cadre/ref.hpp>
#include <cadre/shared_vector.hpp>
#include <cadre/slice.hpp>
#include <cadre/this_engine.hpp>
#include <cadre/version.hpp>  // generated from CMakeLists.txt's project(VERSION): cadre::version(), CADRE_VERSION_*

/// The client API: clusters, clients, views, futures, namespaces, codecs and errors.
namespace cadre {}
