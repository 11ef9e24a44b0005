/*
 * filter_truth.h: the truth table of the filter language (API.md "Filter
 * language"): documents of mixed types (ints, floats, strings, booleans,
 * null, arrays of mixed types, a nested object, a missing attribute) and,
 * for every operator and combinator, the ids that match. Shared by
 * tests/filter/test_filter.c (matching on JSON) and
 * tests/storage/test_attrcol.c (the same on segments, from typed columns).
 * Filters and documents are written with single quotes for readability.
 */
#ifndef TDB_TESTS_FILTER_TRUTH_H
#define TDB_TESTS_FILTER_TRUTH_H

/* ---- the data set ---------------------------------------------------------- */

typedef struct doc {
    const char *id;
    const char *attrs; /* single-quoted JSON */
} doc;

/* Ids in byte order, so a matched set prints in that order. */
static const doc DOCS[] = {
    {"arr", "{'v': [1, 5, 'x', null, true, [1, 2]], 'w': 'Zebra', 'tags': ['red', 3, null]}"},
    {"bool", "{'v': true, 'w': false}"},
    {"empty", "{'v': [], 'w': 'apple'}"},
    {"float", "{'v': 5.0, 'w': '\\uff5a', 'big': 9007199254740992.0, 'tags': ['blue']}"},
    {"frac", "{'v': 4.5, 'w': '\\ud83d\\ude00', 'big': -9007199254740993, 'tags': []}"},
    {"int", "{'v': 5, 'w': '\\u00e9clair', 'big': 9007199254740993, 'tags': ['red', 'sale']}"},
    {"none", "{}"},
    {"null", "{'v': null, 'w': null}"},
    {"obj", "{'v': {'k': 1, 'j': [2]}, 'w': 'apricot'}"},
    {"s10", "{'v': '10', 'w': '10'}"},
    {"s9", "{'v': '9', 'w': '9'}"},
    {"str", "{'v': '5', 'w': 7, 'big': '9007199254740993', 'tags': 'red'}"},
    {"zero", "{'v': -0.0, 'w': 'ap', 'big': -9007199254740992}"},
};
#define NDOCS (sizeof DOCS / sizeof DOCS[0])
#define ALL "arr bool empty float frac int none null obj s10 s9 str zero"

typedef struct truth {
    const char *filter; /* single-quoted JSON */
    const char *want;   /* matching ids, space-separated, in DOCS order */
} truth;

static const truth TRUTH[] = {
    /* $eq: numbers as numbers (5 == 5.0, -0.0 == 0), arrays by any element */
    {"{'v': 5}", "arr float int"},
    {"{'v': 5.0}", "arr float int"},
    {"{'v': {'$eq': 5}}", "arr float int"},
    {"{'v': 0}", "zero"},
    {"{'v': '5'}", "str"},
    {"{'v': true}", "arr bool"},
    {"{'v': 1}", "arr"},                      /* true is not 1 */
    {"{'v': null}", "arr null"},              /* null only equals null; not missing */
    {"{'v': [1, 2]}", "arr"},                 /* an element equal to the array */
    {"{'v': []}", "empty"},                   /* the whole array */
    {"{'v': [1, 5, 'x', null, true, [1, 2]]}", "arr"},
    {"{'v': [5, 1, 'x', null, true, [1, 2]]}", ""}, /* arrays are ordered */
    {"{'v': {'$eq': {'k': 1, 'j': [2]}}}", "obj"},
    {"{'v': {'k': 1, 'j': [2]}}", "obj"},     /* an object without operators is a value */
    {"{'v': {'$eq': {'j': [2], 'k': 1}}}", "obj"}, /* members in any order */
    {"{'v': {'$eq': {'j': [2]}}}", ""},
    {"{'v': {'$eq': {'j': [2], 'k': 1, 'l': 0}}}", ""},
    {"{'v': {'$eq': {'j': 2, 'k': 1}}}", ""},
    {"{'v': {}}", ""},
    /* $ne = NOT $eq: missing, other types, arrays without the value */
    {"{'v': {'$ne': 5}}", "bool empty frac none null obj s10 s9 str zero"},
    {"{'v': {'$ne': '5'}}", "arr bool empty float frac int none null obj s10 s9 zero"},
    {"{'v': {'$ne': null}}", "bool empty float frac int none obj s10 s9 str zero"},
    /* ordering: numbers and strings only; any element of an array */
    {"{'v': {'$gt': 4.99}}", "arr float int"},
    {"{'v': {'$gte': 5.0, '$lte': 5}}", "arr float int"},
    {"{'v': {'$lt': 5}}", "arr frac zero"},
    {"{'v': {'$lte': 0}}", "zero"},
    {"{'v': {'$lte': 1}}", "arr zero"},
    {"{'v': {'$gte': 0, '$lt': 1}}", "zero"},
    {"{'v': {'$gt': 1, '$lt': 5}}", "arr frac"}, /* each operator by any element: 5 and 1 */
    {"{'v': {'$gt': '4'}}", "arr s9 str"},
    {"{'v': {'$lt': '9'}}", "s10 str"},          /* '10' < '9': bytes, not numbers */
    {"{'v': {'$gt': '10'}}", "arr s9 str"},
    {"{'v': {'$gt': null}}", ""},
    {"{'v': {'$gte': null}}", ""},
    {"{'v': {'$gte': false}}", ""},              /* booleans are not ordered */
    {"{'v': {'$gt': [1]}}", ""},
    /* $contains: $eq on an array attribute, false on a scalar */
    {"{'v': {'$contains': 5}}", "arr"},
    {"{'v': {'$contains': 'x'}}", "arr"},
    {"{'v': {'$contains': [1, 2]}}", "arr"},
    {"{'v': {'$contains': '5'}}", ""},
    {"{'w': {'$contains': 7}}", ""},
    /* $prefix: strings (and string elements) by bytes */
    {"{'v': {'$prefix': 'x'}}", "arr"},
    {"{'v': {'$prefix': '1'}}", "s10"},
    {"{'v': {'$prefix': ''}}", "arr s10 s9 str"},
    {"{'w': {'$prefix': 'ap'}}", "empty obj zero"},
    {"{'w': {'$prefix': 'apricots'}}", ""},
    {"{'w': {'$prefix': '\\u00e9'}}", "int"},
    /* $in / $nin: any value, any element; mixed types */
    {"{'v': {'$in': ['x', 4.5]}}", "arr frac"},
    {"{'v': {'$in': [5.0]}}", "arr float int"},
    {"{'v': {'$in': [null]}}", "arr null"},
    {"{'v': {'$in': []}}", ""},
    {"{'v': {'$in': [5, '5', true, [1, 2]]}}", "arr bool float int str"},
    {"{'v': {'$in': ['9', '10', -0.0]}}", "s10 s9 zero"},
    {"{'v': {'$in': [[]]}}", "empty"},
    {"{'v': {'$in': [{'k': 1, 'j': [2]}]}}", "obj"},
    {"{'v': {'$in': [{'j': [2], 'k': 1}, 7]}}", "obj"},
    {"{'v': {'$in': [false, 2]}}", ""},
    {"{'v': {'$nin': []}}", ALL},
    {"{'v': {'$nin': [null, 5]}}", "bool empty frac none obj s10 s9 str zero"},
    {"{'v': {'$nin': ['x', 4.5]}}", "bool empty float int none null obj s10 s9 str zero"},
    /* $exists: present, even as null */
    {"{'v': {'$exists': true}}", "arr bool empty float frac int null obj s10 s9 str zero"},
    {"{'v': {'$exists': false}}", "none"},
    {"{'w': {'$exists': false}}", "none"},
    {"{'w': {'$exists': true, '$eq': null}}", "null"},
    /* a missing attribute: every operator false but $ne, $nin, $exists false */
    {"{'nosuch': {'$exists': false}}", ALL},
    {"{'nosuch': null}", ""},
    {"{'nosuch': {'$ne': null}}", ALL},
    {"{'nosuch': {'$nin': [1, null]}}", ALL},
    {"{'nosuch': {'$gte': 0}}", ""},
    {"{'nosuch': {'$lte': ''}}", ""},
    {"{'nosuch': {'$in': [null]}}", ""},
    {"{'nosuch': {'$prefix': ''}}", ""},
    {"{'nosuch': {'$contains': 1}}", ""},
    {"{'$not': {'nosuch': 1}}", ALL},
    /* strings by UTF-8 bytes: 'Z' < 'a' < U+00E9 < U+FF5A < U+1F600 */
    {"{'w': {'$lte': 'Zebra'}}", "arr s10 s9"},
    {"{'w': {'$gte': 'a', '$lt': '\\u00e9'}}", "empty obj zero"},
    {"{'w': {'$lt': '\\uff5a'}}", "arr empty int obj s10 s9 zero"},
    {"{'w': {'$gt': '\\uff5a'}}", "frac"},
    {"{'w': {'$gt': '1'}}", "arr empty float frac int obj s10 s9 zero"},
    {"{'w': false}", "bool"},
    {"{'w': 0}", ""},
    {"{'w': {'$ne': false}}", "arr empty float frac int none null obj s10 s9 str zero"},
    {"{'w': '7'}", ""},
    {"{'w': 7}", "str"},
    /* ints beyond 2^53 against floats: exact */
    {"{'big': 9007199254740993}", "int"},
    {"{'big': 9007199254740992}", "float"},
    {"{'big': 9007199254740993.0}", "float"}, /* that float literal is 2^53 */
    {"{'big': {'$gt': 9007199254740992.0}}", "int"},
    {"{'big': {'$gte': 9007199254740992}}", "float int"},
    {"{'big': {'$lt': -9007199254740992.0}}", "frac"},
    {"{'big': {'$gte': -9007199254740992.0, '$lt': 0}}", "zero"},
    {"{'big': {'$in': [9007199254740993, -9007199254740992.0]}}", "int zero"},
    {"{'big': {'$in': [9007199254740994, -9007199254740993.0]}}", "zero"},
    {"{'big': {'$gt': 1e300}}", ""},
    {"{'big': {'$lt': 1e999}}", "float frac int zero"}, /* +inf */
    {"{'big': {'$gt': -9223372036854775808}}", "float frac int zero"},
    {"{'big': {'$lt': 9223372036854775807}}", "float frac int zero"},
    {"{'big': {'$gt': 9223372036854775807}}", ""},
    {"{'big': '9007199254740993'}", "str"},
    /* a string[]-like attribute */
    {"{'tags': 'red'}", "arr int str"},
    {"{'tags': {'$contains': 'red'}}", "arr int"},
    {"{'tags': {'$ne': 'red'}}", "bool empty float frac none null obj s10 s9 zero"},
    {"{'tags': {'$in': ['sale', 'blue']}}", "float int"},
    {"{'tags': {'$nin': ['red']}}", "bool empty float frac none null obj s10 s9 zero"},
    {"{'tags': {'$exists': true}}", "arr float frac int str"},
    {"{'tags': {'$gt': 'r'}}", "arr int str"},
    {"{'tags': {'$contains': null}}", "arr"},
    {"{'tags': {'$contains': 3}}", "arr"},
    {"{'tags': {'$contains': '3'}}", ""},
    {"{'tags': []}", "frac"},
    /* combinators */
    {"{}", ALL},
    {"{'$and': []}", ALL},
    {"{'$or': []}", ""},
    {"{'$not': {'$or': []}}", ALL},
    {"{'$not': {'$and': []}}", ""},
    {"{'$not': {}}", ""},
    {"{'$and': [], 'v': '5'}", "str"},
    {"{'$or': [{'$and': []}]}", ALL},
    {"{'$and': [{}]}", ALL},
    {"{'$not': {'$or': [{'v': 5}, {'w': null}]}}", "bool empty frac none obj s10 s9 str zero"},
    {"{'$or': [{'v': {'$lt': 5}}, {'w': false}]}", "arr bool frac zero"},
    {"{'$and': [{'v': {'$gte': 5}}, {'tags': {'$contains': 'red'}}]}", "arr int"},
    {"{'v': 5, 'w': '\\u00e9clair'}", "int"},
    {"{'v': 5, 'tags': {'$exists': false}}", ""},
    {"{'$and': [{'$or': [{'v': '5'}, {'v': '9'}]}, {'$not': {'w': 7}}]}", "s9"},
    {"{'$or': [{'$not': {'v': {'$exists': true}}}, {'$not': {'$not': {'w': 'Zebra'}}}]}",
     "arr none"},
    /* a field's $not: NOT of its operators */
    {"{'v': {'$not': {'$gt': 4.99}}}", "bool empty frac none null obj s10 s9 str zero"},
    {"{'v': {'$not': {'$gte': 1, '$lte': 4.5}}}",
     "bool empty float int none null obj s10 s9 str zero"},
    {"{'w': {'$not': {'$not': {'$prefix': 'ap'}}}}", "empty obj zero"},
    /* the id */
    {"{'id': 'int'}", "int"},
    {"{'id': {'$prefix': 's'}}", "s10 s9 str"},
    {"{'id': {'$gt': 'n'}}", "none null obj s10 s9 str zero"},
    {"{'id': {'$lt': 's9'}}", "arr bool empty float frac int none null obj s10"},
    {"{'id': {'$in': ['arr', 'zero', 'missing']}}", "arr zero"},
    {"{'id': {'$nin': ['arr', 'zero']}}", "bool empty float frac int none null obj s10 s9 str"},
    {"{'id': {'$ne': 'arr'}}", "bool empty float frac int none null obj s10 s9 str zero"},
    {"{'id': {'$exists': true}}", ALL},
    {"{'id': {'$exists': false}}", ""},
    {"{'id': {'$contains': 'arr'}}", ""},
    {"{'id': null}", ""},
    {"{'$and': [{'id': {'$gte': 'f'}}, {'id': {'$lt': 'o'}}, {'v': {'$exists': true}}]}",
     "float frac int null"},
};

#endif
