'use strict';
// One release of the shop: the shared server, with this folder's release.json (read from the working folder).
require('../../server.js');
